-- Refused requests in the access audit (assay.api.audit): 401, 403 and 429 answers are recorded
-- too. A refusal without a valid key has no key id (`key_id` null) but the client's address; the API
-- counts refusals in memory and writes one row per (key, client, route, status) and flush, with the
-- number of requests it stands for (`requests`), so a flood costs no write per request. An
-- admitted request's row has no status (null).
-- depends: 0017-retention

alter table audit.api_access
    alter column key_id drop not null,
    add column if not exists status smallint,
    add column if not exists client text,
    add column if not exists requests integer not null default 1;
create index if not exists api_access_route on audit.api_access (route, accessed_at);

create or replace function audit.record_access(batch jsonb) returns void
language sql security definer set search_path = pg_catalog, pg_temp as $$
    insert into audit.api_access (accessed_at, key_id, method, route, mart, status, client, requests)
    select (r ->> 'at')::timestamptz, left(r ->> 'key_id', 200), left(r ->> 'method', 16),
           left(r ->> 'route', 200), left(r ->> 'mart', 200), (r ->> 'status')::smallint,
           left(r ->> 'client', 100), greatest(coalesce((r ->> 'requests')::integer, 1), 1)
    from jsonb_array_elements(batch) as r;
    update api.keys k set last_used_at = greatest(k.last_used_at, u.last_at)
    from (
        select r ->> 'key_id' as key_id, max((r ->> 'at')::timestamptz) as last_at
        from jsonb_array_elements(batch) as r where r ->> 'key_id' is not null group by 1
    ) u
    where k.id = u.key_id;
$$;
