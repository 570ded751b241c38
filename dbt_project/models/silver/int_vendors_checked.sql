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

final as (

    select
        *,
        case
            when parse_error is not null then 'parse_error'
            when vendor_id is null then 'missing_field:vendor_id'
            when vendor_name is null then 'missing_field:vendor_name'
            when occurrence > 1 then 'duplicate'
        end as reject_reason

    from fields

)

select * from final
