-- Weekly spend per category with a 4-week moving average, a z-score against the category's weekly
-- history and an anomaly flag (|z| > 2). Weeks without spend count as 0; weeks cut off by the
-- edges of the data are marked incomplete and never flagged, since a partial week is not an anomaly.
with transactions as (

    select * from {{ ref('transactions') }}
    -- the months gold keeps (ASSAY_RETENTION_GOLD_*, applied by `apply_retention`)
    where transaction_date >= {{ retained_from('gold') }}

),

weekly as (

    select
        date_trunc('week', transaction_date)::date as week_start,
        {{ category_label('category') }} as category,
        sum(amount_eur) as total_amount_eur,
        count(*) as transaction_count

    from transactions
    group by 1, 2

),

bounds as (

    select min(transaction_date) as first_day, max(transaction_date) as last_day from transactions

),

weeks as (

    select generate_series(min(week_start), max(week_start), interval '7 days')::date as week_start
    from weekly

),

categories as (

    select distinct category from weekly

),

filled as (

    select
        weeks.week_start,
        categories.category,
        coalesce(weekly.total_amount_eur, 0) as total_amount_eur,
        coalesce(weekly.transaction_count, 0) as transaction_count,
        weeks.week_start >= bounds.first_day and weeks.week_start + 6 <= bounds.last_day as is_complete_week

    from weeks
    cross join categories
    cross join bounds
    left join weekly
        on weeks.week_start = weekly.week_start
        and categories.category = weekly.category

),

scored as (

    select
        *,
        avg(total_amount_eur) over (
            partition by category order by week_start rows between 3 preceding and current row
        ) as moving_avg_4w,
        (total_amount_eur - avg(total_amount_eur) over (partition by category))
        / nullif(stddev_pop(total_amount_eur) over (partition by category), 0) as z_score

    from filled

),

final as (

    select
        week_start,
        category,
        total_amount_eur::numeric(24, 2) as total_amount_eur,
        transaction_count::integer as transaction_count,
        round(moving_avg_4w, 2)::numeric(24, 2) as moving_avg_4w,
        round(z_score, 4)::numeric(10, 4) as z_score,
        is_complete_week,
        coalesce(is_complete_week and abs(z_score) > 2, false) as is_anomaly

    from scored

)

select * from final
