{#- The daily partitions a run covers (inclusive days): the environment variables ASSAY_MIN_DATE and
    ASSAY_MAX_DATE, set by Dagster from the run's partition window for each dbt call (assets/dbt.py);
    dbt vars `min_date` / `max_date` override them (the unit tests set their own). Unset, every day.
    Environment variables rather than `--vars`: dbt parses the whole project again whenever its vars
    change, and re-parses only the files that read an environment variable when its value changes. -#}
{% macro window_start() -%}
    {{ var('min_date', env_var('ASSAY_MIN_DATE', '0001-01-01')) }}
{%- endmacro %}

{% macro window_end() -%}
    {{ var('max_date', env_var('ASSAY_MAX_DATE', '9999-12-31')) }}
{%- endmacro %}

{% macro in_window(column) -%}
    {{ column }} between greatest('{{ window_start() }}'::date, {{ retained_from('bronze') }})
        and '{{ window_end() }}'::date
{%- endmacro %}

{#- The first day `layer` keeps (quality.retention_horizons, advanced by `apply_retention`). A window
    never reaches before bronze's: those days' bronze rows are gone, and rebuilding them would delete
    their silver rows and insert nothing. -#}
{#- Unit tests set the var `retention_horizons: false`: their given rows are judged alone, whatever
    the database they run in has removed. -#}
{% macro retained_from(layer) -%}
    {%- if var('retention_horizons', true) -%}
    (select coalesce(max(keep_from), '0001-01-01'::date) from {{ retention_relation() }} where layer = '{{ layer }}')
    {%- else -%}
    '0001-01-01'::date
    {%- endif -%}
{%- endmacro %}

{#- made by the migrations (core/migrations/0017-retention.sql) -#}
{% macro retention_relation() -%}
    {{ api.Relation.create(database=target.database, schema='quality', identifier='retention_horizons') }}
{%- endmacro %}

{% macro delete_window() -%}
{#- A daily incremental model replaces its window: the window's days are deleted first, in the model's
    own transaction, then its rows appended. dbt's delete+insert would delete only the days that come
    back, so a day left with no rows (its file retracted or superseded) would keep its old rows. -#}
{#- The shared lock holds off retention's horizon move (core/retention.py) until this model's
    transaction ends: the window read here cannot lose bronze days half-way. -#}
select pg_advisory_xact_lock_shared(hashtext('assay.retention'));
{% if is_incremental() %}delete from {{ this }} where {{ in_window('partition_date') }}{% endif %}
{%- endmacro %}
