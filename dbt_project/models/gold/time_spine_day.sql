-- One row per day: the time spine dbt's semantic layer requires (semantic_layer.yml). It spans the
-- business dates silver accepts (min_business_date) to the end of next year.
with days as (
    select generate_series(
        '{{ var("min_business_date") }}'::date,
        (date_trunc('year', current_date) + interval '2 years' - interval '1 day')::date,
        interval '1 day'
    )::date as date_day
),
final as (
    select date_day from days
)
select * from final
