-- Typed, validated, deduplicated expense transactions in EUR.
with checked as (

    select * from {{ ref('int_transactions_checked') }}
    where reject_reason is null

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
        loaded_at

    from checked

)

select * from final
