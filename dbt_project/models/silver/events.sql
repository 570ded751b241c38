-- The approval event log: one row per event, typed and deduplicated.
with checked as (

    select * from {{ ref('int_events_checked') }}
    where reject_reason is null

),

final as (

    select
        case_id,
        activity,
        event_ts,
        resource,
        bronze_id,
        source_file,
        loaded_at

    from checked

)

select * from final
