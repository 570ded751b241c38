-- Spend per vendor x month x expense category x department: vendor figures for any month, quarter,
-- half or year (gold.vendor_spend is all-time), cut as gold.monthly_summary cuts spend. The category
-- is the transaction's, so "which vendors sell X" reads the vendors with spend in X. Rows (seed 42):
-- small 1,248 for 1,940 transactions, default 18,699 for 48,500, large ~259k for 1M (~109k without
-- the department; estimated from the sample generator).
with transactions as (

    select * from {{ ref('transactions') }}
    -- the months gold keeps (ASSAY_RETENTION_GOLD_*, applied by `apply_retention`)
    where transaction_date >= {{ retained_from('gold') }}

),

vendors as (

    select vendor_id, vendor_name from {{ ref('vendors') }}

),

employees as (

    select employee_id, department from {{ ref('employees') }}

),

monthly as (

    select
        date_trunc('month', transactions.transaction_date)::date as month,
        transactions.vendor_id,
        {{ category_label('transactions.category') }} as category,
        {{ department_label('employees.department') }} as department,
        sum(transactions.amount_eur) as total_amount_eur,
        count(*) as transaction_count

    from transactions
    left join employees on transactions.employee_id = employees.employee_id
    group by 1, 2, 3, 4

),

final as (

    select
        monthly.month,
        monthly.vendor_id,
        vendors.vendor_name,
        monthly.category,
        monthly.department,
        monthly.total_amount_eur::numeric(24, 2) as total_amount_eur,
        monthly.transaction_count::integer as transaction_count

    from monthly
    inner join vendors on monthly.vendor_id = vendors.vendor_id

)

select * from final
