-- Vendors, one row per vendor id.
with final as (

    select vendor_id, vendor_name, country, default_category, bronze_id, source_file, loaded_at
    from {{ ref('int_vendors_checked') }}
    where reject_reason is null

)

select * from final
