-- Every bronze row that did not reach silver, with the reason. Together with the silver tables
-- this accounts for every bronze row exactly once.
-- A table, not a view: a view over the checked models is dropped with them (Postgres cascades the
-- drop when dbt replaces a model), so after a run that failed half-way there was no rejects at all.
-- A table is replaced atomically (built beside, then swapped in one transaction) and exists at
-- every moment; it holds only the rejected rows.
-- Indexed by (source, bronze_id): the daily gates count the window's rejects by their bronze rows
-- (a lookup per row of the day, not a scan of rejects per row: 5 s on the large sample without it).
{{ config(materialized='table', indexes=[{'columns': ['source', 'bronze_id']}]) }}

{% set daily = [('transactions', 'int_transactions_checked'), ('events', 'int_events_checked')] %}
{% set reference = [('vendors', 'int_vendors_checked'), ('employees', 'int_employees_checked')] %}

with rejected as (

    {% for source_name, model in daily %}
    select
        '{{ source_name }}' as source,
        checked.bronze_id,
        checked.source_file,
        checked.line_number,
        checked.reject_reason,
        checked.payload,
        bronze.parse_error,
        checked.loaded_at
    from {{ ref(model) }} as checked
    -- the parse error's own words, for the (few) rows rejected as parse_error
    left join {{ source('bronze', source_name) }} as bronze
        on checked.reject_reason = 'parse_error' and checked.bronze_id = bronze.bronze_id
    where checked.reject_reason is not null
    union all
    {% endfor %}

    {% for source_name, model in reference %}
    select
        '{{ source_name }}' as source,
        checked.bronze_id,
        checked.source_file,
        checked.line_number,
        checked.reject_reason,
        coalesce(bronze.record::text, bronze.raw_text) as payload,
        bronze.parse_error,
        checked.loaded_at
    from {{ ref(model) }} as checked
    inner join {{ source('bronze', source_name) }} as bronze on checked.bronze_id = bronze.bronze_id
    where checked.reject_reason is not null
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

final as (

    select
        rejected.source,
        rejected.bronze_id,
        rejected.source_file,
        rejected.line_number,
        rejected.reject_reason as reason,
        split_part(rejected.reject_reason, ':', 1) as reason_class,
        -- why a quarantined row was quarantined: the database error and the step that met it;
        -- why a line did not parse: bronze's error (which field count, header, encoding, JSON error)
        case
            when rejected.reject_reason = 'quarantined' then
                quarantine.reason || ' (in ' || quarantine.step || '; quarantine id '
                || quarantine.quarantine_id || ')'
            when rejected.reject_reason = 'parse_error' then rejected.parse_error
        end as detail,
        rejected.payload,
        rejected.loaded_at

    from rejected
    left join {{ quarantine_relation() }} as quarantine
        on rejected.source = quarantine.source
        and rejected.bronze_id = quarantine.bronze_id
        and quarantine.released_at is null

)

select * from final
