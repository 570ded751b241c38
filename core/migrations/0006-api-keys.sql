-- The read API's keys (assay.api.keys): hashes only, written as the owner by `assay api-key`, read by
-- the API as the read-only role (its SELECT comes from the api schema's default grant).
-- depends: 0005-agents

create table if not exists api.keys (
    id text primary key,
    name text not null,
    secret_sha256 bytea not null,
    scopes text[] not null,
    marts text[] not null,
    rate_limit_per_minute integer check (rate_limit_per_minute > 0),
    created_at timestamptz not null default now(),
    revoked_at timestamptz
);
