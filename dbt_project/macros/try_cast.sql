{#- Cast text to a type, or null when Postgres would refuse the value (so the row can be
    rejected with a reason instead of failing the model). Needs PostgreSQL 16+. -#}
{% macro try_cast(expression, type) -%}
    case when pg_input_is_valid({{ expression }}, '{{ type }}') then ({{ expression }})::{{ type }} end
{%- endmacro %}
