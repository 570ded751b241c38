-- Every bronze employee row with the reason it cannot go to silver (if any).
{{ config(materialized='view') }}

with bronze as (

    select * from {{ source('bronze', 'employees') }}

),

fields as (

    select
        bronze_id,
        source_file,
        line_number,
        loaded_at,
        parse_error,
        nullif(trim(record ->> 'employee_id'), '') as employee_id,
        nullif(trim(record ->> 'employee_name'), '') as employee_name,
        nullif(trim(record ->> 'department'), '') as department,
        upper(nullif(trim(record ->> 'cost_centre'), '')) as cost_centre,
        row_number() over (partition by nullif(trim(record ->> 'employee_id'), '') order by bronze_id) as occurrence

    from bronze

),

final as (

    select
        *,
        case
            when parse_error is not null then 'parse_error'
            when employee_id is null then 'missing_field:employee_id'
            when department is null then 'missing_field:department'
            when occurrence > 1 then 'duplicate'
        end as reject_reason

    from fields

)

select * from final
