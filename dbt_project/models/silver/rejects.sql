-- Every bronze row that did not reach silver, with the reason. Together with the silver tables
-- this accounts for every bronze row exactly once.
{% set checked = [
    ('transactions', 'int_transactions_checked'),
    ('events', 'int_events_checked'),
    ('vendors', 'int_vendors_checked'),
    ('employees', 'int_employees_checked'),
] %}

with bronze_payloads as (

    {% for source_name, _ in checked %}
    select '{{ source_name }}' as source, bronze_id, coalesce(record::text, raw_text) as payload
    from {{ source('bronze', source_name) }}
    {% if not loop.last %}union all{% endif %}
    {% endfor %}

),

rejected as (

    {% for source_name, model in checked %}
    select '{{ source_name }}' as source, bronze_id, source_file, line_number, reject_reason, loaded_at
    from {{ ref(model) }}
    where reject_reason is not null
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
        bronze_payloads.payload,
        rejected.loaded_at

    from rejected
    inner join bronze_payloads
        on rejected.source = bronze_payloads.source
        and rejected.bronze_id = bronze_payloads.bronze_id

)

select * from final
