{#- A model's schema is its layer (silver, gold, platinum), not "<target>_<layer>":
    the layer names are what analysts, the API and the read-only role rely on. -#}
{% macro generate_schema_name(custom_schema_name, node) -%}
    {%- if custom_schema_name is none -%}
        {{ target.schema }}
    {%- else -%}
        {{ custom_schema_name | trim }}
    {%- endif -%}
{%- endmacro %}
