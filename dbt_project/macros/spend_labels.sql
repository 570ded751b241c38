{#- The labels spend is grouped by in gold (and named by in platinum's documents), each rule in one
    place so every mart cuts spend alike: a transaction without a category counts as `uncategorised`,
    one whose employee is not in silver.employees is in department `unknown`. -#}
{% macro category_label(column) -%}
    coalesce({{ column }}, 'uncategorised')
{%- endmacro %}

{% macro department_label(column) -%}
    coalesce({{ column }}, 'unknown')
{%- endmacro %}
