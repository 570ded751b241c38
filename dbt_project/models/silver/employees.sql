-- Employees with their department and cost centre, one row per employee id.
with final as (

    select employee_id, employee_name, department, cost_centre, bronze_id, source_file, loaded_at
    from {{ ref('int_employees_checked') }}
    where reject_reason is null

)

select * from final
