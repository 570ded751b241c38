-- Typed, validated, deduplicated expense transactions in EUR; incremental by daily partition.
-- A run replaces exactly its window (delete its days, insert them again): reruns change nothing.
-- The unique index keeps an id in silver once across all days, whichever windows ran (the
-- dbt tests read one window).
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_window() }}",
    indexes=[{'columns': ['partition_date']}, {'columns': ['transaction_id'], 'unique': True}],
) }}

with checked as (

    select * from {{ ref('int_transactions_checked') }}
    where {{ in_window('partition_date') }} and reject_reason is null

),

final as (

    select
        -- ids
        transaction_id,
        employee_id,
        vendor_id,
        -- amounts
        round(amount, 2)::numeric(14, 2) as amount,
        currency,
        round(amount * rate_to_eur, 2)::numeric(14, 2) as amount_eur,
        -- dates
        transaction_date,
        -- text
        description,
        category,
        -- lineage
        bronze_id,
        source_file,
        loaded_at,
        partition_date

    from checked

)

select * from final
