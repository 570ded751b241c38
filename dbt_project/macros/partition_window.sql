{#- The daily partitions a run covers: dbt vars `min_date` and `max_date` (inclusive days), set by
    Dagster from the run's partition window (assets/dbt.py). The defaults in dbt_project.yml cover
    every day, so a plain `dbt build` builds everything. -#}
{% macro in_window(column) -%}
    {{ column }} between '{{ var("min_date") }}'::date and '{{ var("max_date") }}'::date
{%- endmacro %}

{% macro delete_window() -%}
{#- A daily incremental model replaces its window: the window's days are deleted first, in the model's
    own transaction, then its rows appended. dbt's delete+insert would delete only the days that come
    back, so a day left with no rows (its file retracted or superseded) would keep its old rows. -#}
{% if is_incremental() %}delete from {{ this }} where {{ in_window('partition_date') }}{% endif %}
{%- endmacro %}
