-- Every bronze event row, typed, with the reason it cannot go to silver (if any).
{{ config(materialized='view') }}

with bronze as (

    select * from {{ source('bronze', 'events') }}

),

fields as (

    select
        bronze_id,
        source_file,
        line_number,
        loaded_at,
        parse_error,
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
        *,
        row_number() over (partition by case_id, activity, event_ts order by bronze_id) as occurrence

    from typed

),

final as (

    select
        *,
        case
            when parse_error is not null then 'parse_error'
            when case_id is null then 'missing_field:case_id'
            when activity is null then 'missing_field:activity'
            when timestamp_text is null then 'missing_field:timestamp'
            when event_ts is null then 'invalid_type:timestamp'
            when occurrence > 1 then 'duplicate'
        end as reject_reason

    from ranked

)

select * from final
