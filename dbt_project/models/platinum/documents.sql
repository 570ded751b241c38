-- One text document per transaction and per vendor: what embeddings and search work on.
-- The content hash lets the embedding asset re-embed only documents whose text changed.
-- Platinum builds only on a gold layer that passed its quality gates (quality/checks.py), so it
-- depends on every gold mart even though its text comes from silver:
-- depends_on: {{ ref('monthly_summary') }}, {{ ref('category_trends') }}, {{ ref('vendor_spend') }}
with transactions as (

    select * from {{ ref('transactions') }}
    -- the days platinum keeps (ASSAY_RETENTION_PLATINUM_*, applied by `apply_retention`)
    where transaction_date >= {{ retained_from('platinum') }}

),

vendors as (

    select * from {{ ref('vendors') }}

),

employees as (

    select employee_id, department from {{ ref('employees') }}

),

transaction_docs as (

    select
        'transaction:' || transactions.transaction_id as doc_id,
        'transaction' as doc_type,
        transactions.transaction_id as source_id,
        vendors.vendor_name || ', ' || transactions.amount_eur || ' EUR on ' || transactions.transaction_date
            as title,
        -- what the embedding model reads: the words, not the amount and date, which a sentence
        -- model cannot compare and which made every text unique (search filters on both fields)
        concat_ws(
            ' ',
            coalesce(transactions.description, '') || '.',
            'Vendor: ' || vendors.vendor_name || '.',
            'Department: ' || {{ department_label('employees.department') }} || '.'
        ) as embed_text,
        concat_ws(
            ' ', 'Amount: ' || transactions.amount_eur || ' EUR.', 'Date: ' || transactions.transaction_date || '.'
        ) as figures,
        transactions.category,
        employees.department,
        transactions.vendor_id,
        transactions.transaction_date as doc_date,
        transactions.amount_eur

    from transactions
    inner join vendors on transactions.vendor_id = vendors.vendor_id
    left join employees on transactions.employee_id = employees.employee_id

),

vendor_docs as (

    select
        'vendor:' || vendors.vendor_id as doc_id,
        'vendor' as doc_type,
        vendors.vendor_id as source_id,
        vendors.vendor_name as title,
        concat_ws(
            ' ',
            vendors.vendor_name || coalesce(' (' || vendors.country || ').', '.'),
            'Usual category: ' || coalesce(vendors.default_category, 'unknown') || '.'
        ) as embed_text,
        null::text as figures,
        vendors.default_category as category,
        null::text as department,
        vendors.vendor_id,
        null::date as doc_date,
        null::numeric as amount_eur

    from vendors

),

unioned as (

    select * from transaction_docs
    union all
    select * from vendor_docs

),

bodied as (

    select
        *,
        concat_ws(' ', embed_text, figures) as body
    from unioned

),

final as (

    select
        doc_id,
        doc_type,
        source_id,
        title,
        body,
        embed_text,
        category,
        department,
        vendor_id,
        doc_date,
        amount_eur::numeric(14, 2) as amount_eur,
        md5(concat_ws('|', title, body, embed_text, category, department, vendor_id, doc_date, amount_eur))
            as content_hash

    from bodied

)

select * from final
