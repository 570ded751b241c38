-- Every bronze transaction row of the window (daily partitions min_date..max_date) with its typed
-- values and, if it cannot go to silver, the reason. silver.transactions keeps the rows without a
-- reason; silver.rejects shows the others. A run replaces exactly its window (delete its days,
-- insert them again): rerunning a window changes nothing.
{{ config(
    materialized='incremental',
    incremental_strategy='append',
    pre_hook="{{ delete_window() }}",
    post_hook="{{ rejected_index() }}",
    indexes=[{'columns': ['partition_date']}, {'columns': ['transaction_id']}],
) }}

with bronze as (

    select * from {{ source('bronze', 'transactions') }}
    where {{ in_window('partition_date') }}

),

fields as (

    select
        bronze_id,
        partition_date,
        source_file,
        line_number,
        loaded_at,
        parse_error,
        coalesce(record::text, raw_text) as payload,
        -- ids
        nullif(trim(record ->> 'id'), '') as transaction_id,
        nullif(trim(record ->> 'employee_id'), '') as employee_id,
        nullif(trim(record ->> 'vendor_id'), '') as vendor_id,
        -- amounts
        nullif(trim(record ->> 'amount'), '') as amount_text,
        upper(nullif(trim(record ->> 'currency'), '')) as currency,
        -- dates
        nullif(trim(record ->> 'date'), '') as date_text,
        -- text
        nullif(regexp_replace(trim(record ->> 'description'), '\s+', ' ', 'g'), '') as description,
        lower(nullif(trim(record ->> 'category'), '')) as category

    from bronze

),

typed as (

    select
        fields.*,
        -- typed as silver.transactions declares them (its contract): null where a value does not fit
        {{ typed_value('fields.transaction_id', 'transactions', 'transaction_id') }} as typed_id,
        {{ typed_value('amount_text', 'transactions', 'amount', base='numeric') }} as amount,
        {{ iso_date('date_text') }} as transaction_date,
        -- the first occurrence of an id wins; later copies are duplicates: within the window ...
        row_number() over (
            partition by {{ typed_value('fields.transaction_id', 'transactions', 'transaction_id') }}
            order by bronze_id
        ) as id_occurrence,
        -- ... and across days: an earlier copy already checked in another partition
        {% if is_incremental() %}
        exists (
            select 1 from {{ this }} as earlier
            where earlier.transaction_id = fields.transaction_id
                and not {{ in_window('earlier.partition_date') }}
                -- loaded before this row; or accepted already, when an older day is built after
                -- a newer one (after a failed run): the copy in silver stays, this one is the
                -- duplicate, and the unique index never meets two copies
                and (earlier.bronze_id < fields.bronze_id or earlier.reject_reason is null)
        )
        {% else %}
        false
        {% endif %} as seen_before

    from fields

),

checked as (

    select
        typed.*,
        rates.rate_to_eur,
        case
            -- a row that made a step fail on a case no rule covers (bronze.quarantine)
            when {{ quarantined('transactions', 'typed.bronze_id') }} then 'quarantined'
            when typed.parse_error is not null then 'parse_error'
            when typed.transaction_id is null then 'missing_field:id'
            when typed.employee_id is null then 'missing_field:employee_id'
            when typed.vendor_id is null then 'missing_field:vendor_id'
            when typed.amount_text is null then 'missing_field:amount'
            when typed.currency is null then 'missing_field:currency'
            when typed.date_text is null then 'missing_field:date'
            -- values that do not fit the declared types of silver.transactions
            {{- type_rejects('typed.transaction_id', 'id', 'transactions', 'transaction_id') }}
            {{- type_rejects('typed.employee_id', 'employee_id', 'transactions', 'employee_id') }}
            {{- type_rejects('typed.vendor_id', 'vendor_id', 'transactions', 'vendor_id') }}
            {{- type_rejects('typed.amount_text', 'amount', 'transactions', 'amount') }}
            {{- type_rejects('typed.currency', 'currency', 'transactions', 'currency') }}
            {{- type_rejects('typed.description', 'description', 'transactions', 'description') }}
            {{- type_rejects('typed.category', 'category', 'transactions', 'category') }}
            when typed.amount is null then 'invalid_type:amount'
            when typed.transaction_date is null then 'invalid_type:date'
            when typed.id_occurrence > 1 or typed.seen_before then 'duplicate'
            -- after rounding to the declared precision: 0.004 is 0.00
            when typed.amount <= 0 then 'non_positive_amount'
            when typed.transaction_date < '{{ var("min_business_date") }}'::date then 'out_of_range:date'
            when typed.transaction_date > current_date then 'future_date'
            when rates.currency is null then 'unknown_currency'
            -- the amount in EUR must fit silver's amount_eur too, and stay positive once rounded
            when not pg_input_is_valid(
                (typed.amount * rates.rate_to_eur)::text, '{{ contract_type("transactions", "amount_eur") or "numeric" }}'
            ) then 'out_of_range:amount_eur'
            when round(typed.amount * rates.rate_to_eur, 2) <= 0 then 'non_positive_amount'
            when typed.category is not null and categories.category is null then 'unknown_category'
            when vendors.vendor_id is null then 'orphan_vendor'
        end as reject_reason

    from typed
    left join {{ ref('currency_rates') }} as rates on typed.currency = rates.currency
    left join {{ ref('categories') }} as categories on typed.category = categories.category
    -- the accepted vendors (= silver.vendors), read from the unguarded int model: silver.vendors'
    -- quality gate reads silver.rejects, which is built after this model
    left join {{ ref('int_vendors_checked') }} as vendors
        on typed.vendor_id = vendors.vendor_id and vendors.reject_reason is null

),

final as (

    select
        bronze_id,
        partition_date,
        source_file,
        line_number,
        loaded_at,
        -- a rejected row keeps its values in `payload`; typed columns stay within their types
        typed_id as transaction_id,
        {{ typed_value('employee_id', 'transactions', 'employee_id') }} as employee_id,
        {{ typed_value('vendor_id', 'transactions', 'vendor_id') }} as vendor_id,
        amount,
        {{ typed_value('currency', 'transactions', 'currency') }} as currency,
        rate_to_eur,
        transaction_date,
        {{ typed_value('description', 'transactions', 'description') }} as description,
        {{ typed_value('category', 'transactions', 'category') }} as category,
        reject_reason,
        -- the record as loaded, kept for rejected rows only (silver.rejects shows it)
        case when reject_reason is not null then payload end as payload

    from checked

)

select * from final
