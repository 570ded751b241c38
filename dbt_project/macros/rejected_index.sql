-- A partial index of a checked model's rejected rows (bronze_id, with the reason): `rejects` reads
-- them, and the check whether `rejects` is already current (assets/dbt.py) counts them, without a
-- scan of the whole model. Made once (a post-hook: an incremental model keeps its indexes).
{% macro rejected_index() -%}
create index if not exists {{ this.identifier }}_rejected on {{ this }} (bronze_id) include (reject_reason)
where reject_reason is not null
{%- endmacro %}
