-- What each request in the access audit (assay.api.audit) read and how it ended: the query string
-- (`filters`, never the key: a value that looks like one is replaced), the rows the response carried
-- (`row_count`: a mart page's rows, an export's rows, a search's hits; null where a route has none,
-- e.g. a 304), what was asked (`subject`: a search's or a question's text, an answer's task/key) and,
-- for every admitted request, the response's `status` (200, 304, 400, 404, 500, ...; before this,
-- null for a served one). The API writes a row when the response has ended, so all of it is known.
-- The reader still writes only through `audit.record_access`, which bounds every text.
-- depends: 0020-audit-reader

alter table audit.api_access
    add column if not exists filters text,
    add column if not exists row_count integer,
    add column if not exists subject text;

-- One pass over the batch, parsed once into typed columns (jsonb_to_recordset, rather than one
-- `->>` per column and row); the inserted rows (RETURNING) give each key's latest use, rather than a
-- second pass over the whole batch.
create or replace function audit.record_access(batch jsonb) returns void
language sql security definer set search_path = pg_catalog, pg_temp as $$
    with written as (
        insert into audit.api_access (
            accessed_at, key_id, method, route, mart, status, client, requests, filters, row_count, subject
        )
        select r.at, left(r.key_id, 200), left(r.method, 16), left(r.route, 200), left(r.mart, 200),
               r.status, left(r.client, 100), greatest(coalesce(r.requests, 1), 1), left(r.filters, 1000),
               case when r.rows >= 0 then least(r.rows, 2147483647)::integer end, left(r.subject, 500)
        from jsonb_to_recordset(batch) as r(
            at timestamptz, key_id text, method text, route text, mart text, status smallint,
            client text, requests integer, filters text, rows bigint, subject text
        )
        returning key_id, accessed_at
    )
    update api.keys k set last_used_at = greatest(k.last_used_at, u.last_at)
    from (select key_id, max(accessed_at) as last_at from written where key_id is not null group by 1) u
    where k.id = u.key_id;
$$;

-- Each audit row is written to every index of the table: (route, accessed_at) served no query
-- (`assay audit --route` and `GET /v1/audit?route=` match a prefix with starts_with, which Postgres
-- answers with the accessed_at order, not this index), so it goes; accessed_at (newest first,
-- retention) and (key_id, accessed_at) stay.
drop index if exists audit.api_access_route;
