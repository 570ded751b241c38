{#- Type limits come from the schema, not from examples: each silver model declares its columns'
    data types in its contract (models/silver/*.yml), and the checked models derive from those
    types which text values cannot go there, so a value that would break a later cast, index or
    constraint is rejected with a reason instead of failing a step. A new column gets its checks by
    being declared. Postgres itself judges each value against the declared type
    (`pg_input_is_valid`, PostgreSQL 16+). -#}

{#- The declared data type of `column` in the contract of model `model_name`, lower case; empty where
    dbt offers no graph (parsing, and unit tests, which compile against fixtures only). -#}
{% macro contract_type(model_name, column) -%}
    {%- set nodes = graph.get('nodes') if execute else none -%}
    {%- if nodes -%}
        {%- set node = nodes.values() | selectattr('resource_type', 'equalto', 'model')
            | selectattr('name', 'equalto', model_name) | first -%}
        {%- set declared = node.columns.get(column, {}).get('data_type') if node else none -%}
        {%- if not declared -%}
            {{ exceptions.raise_compiler_error("no data_type for " ~ model_name ~ "." ~ column ~ " in its contract") }}
        {%- endif -%}
        {{- declared | trim | lower -}}
    {%- endif -%}
{%- endmacro %}

{#- `when ... then '<reason>:<field>'` branches for a trimmed text value bound for a typed column:
    invalid_type (not a value of the base type), invalid_number (NaN or +-Infinity), out_of_range
    (a number that does not fit the declared precision), too_long (text longer than declared). -#}
{% macro type_rejects(value, field, model_name, column) -%}
    {%- set declared = contract_type(model_name, column) -%}
    {%- set base = declared.split('(')[0] | trim -%}
    {%- if base in ('numeric', 'decimal') %}
            when not pg_input_is_valid({{ value }}, 'numeric') then 'invalid_type:{{ field }}'
            when {{ value }}::numeric in ('NaN', 'Infinity', '-Infinity') then 'invalid_number:{{ field }}'
            when not pg_input_is_valid({{ value }}, '{{ declared }}') then 'out_of_range:{{ field }}'
    {%- elif base in ('smallint', 'integer', 'bigint') %}
            when not pg_input_is_valid({{ value }}, 'numeric') then 'invalid_type:{{ field }}'
            when not pg_input_is_valid({{ value }}, '{{ declared }}') then 'out_of_range:{{ field }}'
    {%- elif base in ('character varying', 'varchar', 'character', 'char') %}
            when not pg_input_is_valid({{ value }}, '{{ declared }}') then 'too_long:{{ field }}'
    {%- endif -%}
{%- endmacro %}

{#- The value cast to the column's declared type, or null when it does not fit (the row is then
    rejected by `type_rejects`; a null never reaches an index or a constraint). Without a graph (unit
    tests) the value is cast to `base`, the type the model's own logic treats it as. -#}
{% macro typed_value(value, model_name, column, base='text') -%}
    {%- set declared = contract_type(model_name, column) or base -%}
    case when pg_input_is_valid({{ value }}, '{{ declared }}') then ({{ value }})::{{ declared }} end
{%- endmacro %}

{#- A calendar date from text: only ISO 8601 (`2025-03-14`), never guessed (`04/03/2025` is
    ambiguous: rejected); a full ISO timestamp with an offset or `Z` is converted to UTC first, one
    without an offset is taken as UTC. Null for anything else. -#}
{% macro iso_date(value) -%}
    case
        when {{ value }} ~ '^\d{4}-\d{2}-\d{2}$' and pg_input_is_valid({{ value }}, 'date')
            then ({{ value }})::date
        when {{ iso_timestamp_pattern(value) }} and pg_input_is_valid({{ value }}, 'timestamp')
            then ({{ iso_timestamptz(value) }} at time zone 'UTC')::date
    end
{%- endmacro %}

{#- An instant from ISO 8601 text (`2025-03-07T23:30:00-05:00`, `...Z`, or without an offset: UTC),
    whatever the server's TimeZone setting; null for anything else. -#}
{% macro iso_timestamptz(value) -%}
    case
        when {{ iso_timestamp_pattern(value) }} and pg_input_is_valid({{ value }}, 'timestamptz') then
            case
                when {{ value }} ~ '(Z|[+-]\d{2}(:?\d{2})?)$' then ({{ value }})::timestamptz
                else ({{ value }})::timestamp at time zone 'UTC'
            end
    end
{%- endmacro %}

{% macro iso_timestamp_pattern(value) -%}
    {{ value }} ~ '^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}(:?\d{2})?)?$'
{%- endmacro %}

{#- True for a row of bronze `source_name` that a run quarantined (a database error on its data in a
    step no rule covered; landing/quarantine.py) and nobody has released since. An uncorrelated IN:
    Postgres hashes the few open quarantine ids once per statement. Always false in unit tests (no
    graph): they see their fixtures only. -#}
{% macro quarantined(source_name, bronze_id) -%}
    {%- set nodes = graph.get('nodes') if execute else none -%}
    {%- if nodes -%}
    {{ bronze_id }} in (
        select quarantine.bronze_id from {{ quarantine_relation() }} as quarantine
        where quarantine.source = '{{ source_name }}' and quarantine.released_at is null
    )
    {%- else -%}
    false
    {%- endif -%}
{%- endmacro %}

{#- bronze.quarantine, made by the migrations (core/migrations/0010-bronze-quarantine.sql). Named
    here, not declared as a dbt source: Dagster would show a source that no asset writes as an
    external asset that is never materialised, and eager automation holds back every model whose
    parent is "missing". -#}
{% macro quarantine_relation() -%}
    {{ api.Relation.create(database=target.database, schema='bronze', identifier='quarantine') }}
{%- endmacro %}
