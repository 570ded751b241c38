-- The approval event log: one row per event, typed and deduplicated; incremental by daily partition.
-- A run replaces exactly its window (delete its days, insert them again): reruns change nothing.
{{ config(
    materialized='incremental',
    incremental_strategy='delete+insert',
    unique_key='partition_date',
    indexes=[{'columns': ['partition_date']}],
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
