-- Answers that name transactions cite where each one came from: the landing file and line of its
-- bronze row. The read-only role reads neither silver nor bronze, so it gets this one SECURITY DEFINER
-- function (owned by the pipeline owner, as agents.record_asked in 0014): given transaction ids, one
-- set-based query follows silver.transactions' lineage (bronze_id, on its partition day so the BRIN
-- index narrows the bronze scan) to its bronze row and the file's ledger entry. plpgsql, so the body
-- resolves silver.transactions when called: dbt makes that table after migrations run.
-- depends: 0015-api-key-masks

create or replace function agents.transaction_sources(ids text[])
returns table (transaction_id text, source text, source_file text, line_number integer, batch_id uuid)
language plpgsql stable security definer set search_path = pg_catalog, pg_temp as $$
begin
    return query
    select s.transaction_id::text, batches.source, batches.source_file, b.line_number, b.batch_id
    from silver.transactions as s
    inner join bronze.transactions as b
        on b.bronze_id = s.bronze_id
        and (b.partition_date = s.partition_date or (b.partition_date is null and s.partition_date is null))
    inner join bronze.load_batches as batches on batches.batch_id = b.batch_id
    where s.transaction_id::text = any(ids);
end
$$;

revoke all on function agents.transaction_sources(text[]) from public;
grant usage on schema agents to assay_reader;
grant execute on function agents.transaction_sources(text[]) to assay_reader;
