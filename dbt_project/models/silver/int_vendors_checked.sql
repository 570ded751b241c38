-- Every bronze vendor row with the reason it cannot go to silver (if any).
{{ config(materialized='view') }}

with bronze as (

    select * from {{ source('bronze', 'vendors') }}

),

fields as (

    select
        bronze_id,
        source_file,
        line_number,
        loaded_at,
        parse_error,
        nullif(trim(record ->> 'vendor_id'), '') as vendor_id,
        nullif(trim(record ->> 'vendor_name'), '') as vendor_name,
        upper(nullif(trim(record ->> 'country'), '')) as country,
        lower(nullif(trim(record ->> 'default_category'), '')) as default_category,
        row_number() over (partition by nullif(trim(record ->> 'vendor_id'), '') order by bronze_id) as occurrence

    from bronze

),

checked as (

    select
        fields.*,
        case
            -- a row that made a step fail on a case no rule covers (bronze.quarantine)
            when {{ quarantined('vendors', 'fields.bronze_id') }} then 'quarantined'
            when parse_error is not null then 'parse_error'
            when fields.vendor_id is null then 'missing_field:vendor_id'
            when vendor_name is null then 'missing_field:vendor_name'
            -- values that do not fit the declared types of silver.vendors
            {{- type_rejects('fields.vendor_id', 'vendor_id', 'vendors', 'vendor_id') }}
            {{- type_rejects('vendor_name', 'vendor_name', 'vendors', 'vendor_name') }}
            {{- type_rejects('default_category', 'default_category', 'vendors', 'default_category') }}
            when country !~ '^[A-Z]{2}$' then 'invalid_type:country'
            when occurrence > 1 then 'duplicate'
            when default_category is not null and categories.category is null then 'unknown_category'
        end as reject_reason

    from fields
    left join {{ ref('categories') }} as categories on fields.default_category = categories.category

),

final as (

    select
        bronze_id,
        source_file,
        line_number,
        loaded_at,
        parse_error,
        -- a rejected row keeps its values in bronze; typed columns stay within their types
        {{ typed_value('vendor_id', 'vendors', 'vendor_id') }} as vendor_id,
        {{ typed_value('vendor_name', 'vendors', 'vendor_name') }} as vendor_name,
        {{ typed_value('country', 'vendors', 'country') }} as country,
        {{ typed_value('default_category', 'vendors', 'default_category') }} as default_category,
        occurrence,
        reject_reason

    from checked

)

select * from final
