-- Access audit (assay.api.audit): which API key read which route and mart, and when. The API's
-- connections are the read-only role; it writes here only through `audit.record_access`, a
-- SECURITY DEFINER function (owned by the pipeline owner) that inserts a batch of rows and stamps
-- each key's `last_used_at`: the reader has EXECUTE on it and no privilege on any table, so it can
-- add audit rows and nothing else. Old rows are deleted by `purge_audit` (ASSAY_AUDIT_RETENTION_DAYS).
-- depends: 0012-alerts-sent

create schema if not exists audit;

create table if not exists audit.api_access (
    access_id bigint generated always as identity primary key,
    accessed_at timestamptz not null,
    key_id text not null,
    method text not null,
    route text not null,  -- the route's template, e.g. /v1/search (mart routes: /v1/marts/<mart>/rows)
    mart text             -- the mart read, when the route names one
);
create index if not exists api_access_at on audit.api_access (accessed_at);
create index if not exists api_access_key on audit.api_access (key_id, accessed_at);

alter table api.keys add column if not exists last_used_at timestamptz;

create or replace function audit.record_access(batch jsonb) returns void
language sql security definer set search_path = pg_catalog, pg_temp as $$
    insert into audit.api_access (accessed_at, key_id, method, route, mart)
    select (r ->> 'at')::timestamptz, r ->> 'key_id', left(r ->> 'method', 16), left(r ->> 'route', 200),
           left(r ->> 'mart', 200)
    from jsonb_array_elements(batch) as r;
    update api.keys k set last_used_at = greatest(k.last_used_at, u.last_at)
    from (
        select r ->> 'key_id' as key_id, max((r ->> 'at')::timestamptz) as last_at
        from jsonb_array_elements(batch) as r group by 1
    ) u
    where k.id = u.key_id;
$$;

revoke all on function audit.record_access(jsonb) from public;
grant usage on schema audit to assay_reader;
grant execute on function audit.record_access(jsonb) to assay_reader;
