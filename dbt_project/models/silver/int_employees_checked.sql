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

checked as (

    select
        *,
        case
            -- a row that made a step fail on a case no rule covers (bronze.quarantine)
            when {{ quarantined('employees', 'bronze_id') }} then 'quarantined'
            when parse_error is not null then 'parse_error'
            when employee_id is null then 'missing_field:employee_id'
            when department is null then 'missing_field:department'
            -- values that do not fit the declared types of silver.employees
            {{- type_rejects('employee_id', 'employee_id', 'employees', 'employee_id') }}
            {{- type_rejects('employee_name', 'employee_name', 'employees', 'employee_name') }}
            {{- type_rejects('department', 'department', 'employees', 'department') }}
            {{- type_rejects('cost_centre', 'cost_centre', 'employees', 'cost_centre') }}
            when occurrence > 1 then 'duplicate'
        end as reject_reason

    from fields

),

final as (

    select
        bronze_id,
        source_file,
        line_number,
        loaded_at,
        parse_error,
        -- a rejected row keeps its values in bronze; typed columns stay within their types
        {{ typed_value('employee_id', 'employees', 'employee_id') }} as employee_id,
        {{ typed_value('employee_name', 'employees', 'employee_name') }} as employee_name,
        {{ typed_value('department', 'employees', 'department') }} as department,
        {{ typed_value('cost_centre', 'employees', 'cost_centre') }} as cost_centre,
        occurrence,
        reject_reason

    from checked

)

select * from final
