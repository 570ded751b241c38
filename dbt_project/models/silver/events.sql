-- The approval event log: one row per event, typed and deduplicated; incremental by daily partition.
-- A run replaces exactly its window (delete its days, insert them again): reruns change nothing.
-- The unique index keeps an event in silver once across all days, whichever windows ran (the
-- dbt tests read one window).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_window() }}",
    indexes=[
        {'columns': ['partition_date']},
        {'columns': ['case_id', 'activity', 'event_ts'], 'unique': True},
    ],
) }}

with checked as (

    select * from {{ ref('int_events_checked') }}
    where {{ in_window('partition_date') }} and reject_reason is null

),

final as (

    select
        case_id,
        activity,
        event_ts,
        resource,
        bronze_id,
        source_file,
        loaded_at,
        partition_date

    from checked

)

select * from final
