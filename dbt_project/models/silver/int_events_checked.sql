-- Every bronze event row of the window (daily partitions min_date..max_date), typed, with the
-- reason it cannot go to silver (if any). A run replaces exactly its window (delete its days,
-- insert them again): rerunning a window changes nothing.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='partition_date',
    indexes=[{'columns': ['partition_date']}, {'columns': ['case_id']}],
) }}

with bronze as (

    select * from {{ source('bronze', 'events') }}
    where {{ in_window('partition_date') }}

),

fields as (

    select
        bronze_id,
        partition_date,
        source_file,
        line_number,
        loaded_at,
        parse_error,
        coalesce(record::text, raw_text) as payload,
        nullif(trim(record ->> 'case_id'), '') as case_id,
        nullif(trim(record ->> 'activity'), '') as activity,
        nullif(trim(record ->> 'timestamp'), '') as timestamp_text,
        nullif(trim(record ->> 'resource'), '') as resource

    from bronze

),

typed as (

    select
        *,
        {{ try_cast('timestamp_text', 'timestamptz') }} as event_ts

    from fields

),

ranked as (

    select
        typed.*,
        -- the first occurrence of an event wins: within the window ...
        row_number() over (partition by case_id, activity, event_ts order by bronze_id) as occurrence,
        -- ... and across days: an earlier copy already checked in another partition
        {% if is_incremental() %}
        exists (
            select 1 from {{ this }} as earlier
            where earlier.case_id = typed.case_id
                and earlier.activity = typed.activity
                and earlier.event_ts = typed.event_ts
                and earlier.bronze_id < typed.bronze_id
                and not {{ in_window('earlier.partition_date') }}
        )
        {% else %}
        false
        {% endif %} as seen_before

    from typed

),

checked as (

    select
        *,
        case
            when parse_error is not null then 'parse_error'
            when case_id is null then 'missing_field:case_id'
            when activity is null then 'missing_field:activity'
            when timestamp_text is null then 'missing_field:timestamp'
            when event_ts is null then 'invalid_type:timestamp'
            when occurrence > 1 or seen_before then 'duplicate'
        end as reject_reason

    from ranked

),

final as (

    select
        bronze_id,
        partition_date,
        source_file,
        line_number,
        loaded_at,
        case_id,
        activity,
        event_ts,
        resource,
        reject_reason,
        -- the record as loaded, kept for rejected rows only (silver.rejects shows it)
        case when reject_reason is not null then payload end as payload

    from checked

)

select * from final
