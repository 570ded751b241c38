{#- The daily partitions a run covers: dbt vars `min_date` and `max_date` (inclusive days), set by
    Dagster from the run's partition window (assets/dbt.py). The defaults in dbt_project.yml cover
    every day, so a plain `dbt build` builds everything. -#}
{% macro in_window(column) -%}
    {{ column }} between '{{ var("min_date") }}'::date and '{{ var("max_date") }}'::date
{%- endmacro %}
