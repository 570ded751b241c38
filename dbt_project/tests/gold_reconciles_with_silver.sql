-- Every silver transaction is counted exactly once in each gold mart, with its full amount:
-- a row here names a mart whose totals differ from silver.transactions.
{{ config(meta={'dagster': {'ref': {'name': 'monthly_summary'}}}) }}

with silver as (

    select count(*) as transaction_count, coalesce(sum(amount_eur), 0) as total_amount_eur
    from {{ ref('transactions') }}
    -- the rows gold keeps (retention)
    where transaction_date >= {{ retained_from('gold') }}

),

marts as (

    select 'monthly_summary' as mart, sum(transaction_count) as transaction_count,
           coalesce(sum(total_amount_eur), 0) as total_amount_eur
    from {{ ref('monthly_summary') }}
    union all
    select 'category_trends', sum(transaction_count), coalesce(sum(total_amount_eur), 0)
    from {{ ref('category_trends') }}
    union all
    select 'vendor_spend', sum(transaction_count), coalesce(sum(total_amount_eur), 0)
    from {{ ref('vendor_spend') }}
    union all
    select 'vendor_monthly', sum(transaction_count), coalesce(sum(total_amount_eur), 0)
    from {{ ref('vendor_monthly') }}

),

final as (

    select marts.*, silver.transaction_count as silver_count, silver.total_amount_eur as silver_total
    from marts
    cross join silver
    where coalesce(marts.transaction_count, 0) <> silver.transaction_count
       or marts.total_amount_eur <> silver.total_amount_eur

)

select * from final
