-- Bronze rows without a stored content hash (assay.landing.bronze). The generated md5 column of 0001
-- slowed every load (README, "Bronze load against a bare COPY") and nothing read it:
-- a file loads at most once by its SHA-256 (bronze.load_batches unique (source, file_hash)), and a
-- row is identified by its batch and line (batch_id, line_number). The `_active` views that silver
-- reads keep a `content_hash` column, now computed when a query asks for it (the same value as the
-- stored one: md5 of the payload as text, or of the raw line when it did not parse), so the views
-- and the dbt views over them keep their columns. A query that does not select it computes nothing.
-- depends: 0021-audit-details

do $$
declare
    source text;
begin
    foreach source in array array['transactions', 'events', 'vendors', 'employees'] loop
        -- first the view (same columns, in the same order), so that no view depends on the column
        execute format(
            'create or replace view bronze.%I as select t.bronze_id, t.batch_id, t.source_file,'
            ' t.line_number, t.record, t.raw_text, t.parse_error,'
            ' md5(coalesce(t.record::text, t.raw_text)) as content_hash, t.loaded_at, t.partition_date'
            ' from bronze.%I as t where not exists ('
            ' select from bronze.load_batches as b where b.batch_id = t.batch_id'
            ' and (b.retracted_at is not null or b.superseded_by is not null))',
            source || '_active', source
        );
        execute format('alter table bronze.%I drop column if exists content_hash', source);
    end loop;
end
$$;
