-- Spend per month x category x department with month-on-month and year-on-year growth.
-- Growth compares with exactly the previous month (or the same month a year before); it is null
-- when that period had no spend, rather than a misleading comparison with an older month.
with transactions as (

    select * from {{ ref('transactions') }}
    -- the months gold keeps (ASSAY_RETENTION_GOLD_*, applied by `apply_retention`)
    where transaction_date >= {{ retained_from('gold') }}

),

employees as (

    select employee_id, department from {{ ref('employees') }}

),

monthly as (

    select
        date_trunc('month', transactions.transaction_date)::date as month,
        {{ category_label('transactions.category') }} as category,
        {{ department_label('employees.department') }} as department,
        sum(transactions.amount_eur) as total_amount_eur,
        count(*) as transaction_count

    from transactions
    left join employees on transactions.employee_id = employees.employee_id
    group by 1, 2, 3

),

final as (

    select
        monthly.month,
        monthly.category,
        monthly.department,
        monthly.total_amount_eur::numeric(24, 2) as total_amount_eur,
        monthly.transaction_count::integer as transaction_count,
        round(
            100 * (monthly.total_amount_eur - previous_month.total_amount_eur)
            / nullif(previous_month.total_amount_eur, 0), 2
        )::numeric(24, 2) as mom_growth_pct,
        round(
            100 * (monthly.total_amount_eur - previous_year.total_amount_eur)
            / nullif(previous_year.total_amount_eur, 0), 2
        )::numeric(24, 2) as yoy_growth_pct

    from monthly
    left join monthly as previous_month
        on monthly.category = previous_month.category
        and monthly.department = previous_month.department
        and previous_month.month = (monthly.month - interval '1 month')::date
    left join monthly as previous_year
        on monthly.category = previous_year.category
        and monthly.department = previous_year.department
        and previous_year.month = (monthly.month - interval '12 months')::date

)

select * from final
