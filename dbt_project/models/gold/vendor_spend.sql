-- Vendors ranked by spend, with their share of all spend.
with transactions as (

    select * from {{ ref('transactions') }}
    -- the months gold keeps (ASSAY_RETENTION_GOLD_*, applied by `apply_retention`)
    where transaction_date >= {{ retained_from('gold') }}

),

vendors as (

    select vendor_id, vendor_name from {{ ref('vendors') }}

),

per_vendor as (

    select
        vendor_id,
        sum(amount_eur) as total_amount_eur,
        count(*) as transaction_count,
        max(transaction_date) as last_transaction_date

    from transactions
    group by 1

),

final as (

    select
        row_number() over (order by per_vendor.total_amount_eur desc, per_vendor.vendor_id)::integer
            as spend_rank,
        per_vendor.vendor_id,
        vendors.vendor_name,
        per_vendor.total_amount_eur::numeric(24, 2) as total_amount_eur,
        per_vendor.transaction_count::integer as transaction_count,
        round(100 * per_vendor.total_amount_eur / sum(per_vendor.total_amount_eur) over (), 4)
            ::numeric(8, 4) as share_of_spend_pct,
        per_vendor.last_transaction_date

    from per_vendor
    inner join vendors on per_vendor.vendor_id = vendors.vendor_id

)

select * from final
