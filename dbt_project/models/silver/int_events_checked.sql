-- Every bronze event row of the window (daily partitions min_date..max_date), typed, with the
-- reason it cannot go to silver (if any). A run replaces exactly its window (delete its days,
-- insert them again): rerunning a window changes nothing.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_window() }}",
    post_hook="{{ rejected_index() }}",
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
        fields.*,
        -- typed as silver.events declares them (its contract): null where a value does not fit
        {{ typed_value('case_id', 'events', 'case_id') }} as typed_case_id,
        {{ typed_value('activity', 'events', 'activity') }} as typed_activity,
        {{ iso_timestamptz('timestamp_text') }} as event_ts

    from fields

),

ranked as (

    select
        typed.*,
        -- the first occurrence of an event wins: within the window ...
        row_number() over (
            partition by typed_case_id, typed_activity, event_ts order by bronze_id
        ) as occurrence,
        -- ... and across days: an earlier copy already checked in another partition
        {% if is_incremental() %}
        exists (
            select 1 from {{ this }} as earlier
            where earlier.case_id = typed.typed_case_id
                and earlier.activity = typed.typed_activity
                and earlier.event_ts = typed.event_ts
                and not {{ in_window('earlier.partition_date') }}
                -- loaded before this row, or already accepted (see int_transactions_checked)
                and (earlier.bronze_id < typed.bronze_id or earlier.reject_reason is null)
        )
        {% else %}
        false
        {% endif %} as seen_before

    from typed

),

checked as (

    select
        ranked.*,
        case
            -- a row that made a step fail on a case no rule covers (bronze.quarantine)
            when {{ quarantined('events', 'bronze_id') }} then 'quarantined'
            when parse_error is not null then 'parse_error'
            when case_id is null then 'missing_field:case_id'
            when ranked.activity is null then 'missing_field:activity'
            when timestamp_text is null then 'missing_field:timestamp'
            -- values that do not fit the declared types of silver.events
            {{- type_rejects('case_id', 'case_id', 'events', 'case_id') }}
            {{- type_rejects('ranked.activity', 'activity', 'events', 'activity') }}
            {{- type_rejects('resource', 'resource', 'events', 'resource') }}
            -- ISO 8601 only; an offset is converted to UTC, none means UTC
            when event_ts is null then 'invalid_type:timestamp'
            when occurrence > 1 or seen_before then 'duplicate'
            when event_ts < '{{ var("min_business_date") }}'::date then 'out_of_range:timestamp'
            when event_ts >= current_date + 1 then 'future_date'
            when activities.activity is null then 'unknown_activity'
        end as reject_reason

    from ranked
    left join {{ ref('activities') }} as activities on ranked.typed_activity = activities.activity

),

final as (

    select
        bronze_id,
        partition_date,
        source_file,
        line_number,
        loaded_at,
        -- a rejected row keeps its values in `payload`; typed columns stay within their types
        typed_case_id as case_id,
        typed_activity as activity,
        event_ts,
        {{ typed_value('resource', 'events', 'resource') }} as resource,
        reject_reason,
        -- the record as loaded, kept for rejected rows only (silver.rejects shows it)
        case when reject_reason is not null then payload end as payload

    from checked

)

select * from final
