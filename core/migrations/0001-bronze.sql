-- The bronze ledger and one append-only table per landing source (assay.landing.bronze).
-- Baseline: `if not exists` throughout, so a home made before migrations existed adopts it as is.
-- (No semicolons in comments: yoyo splits the file into statements on them.)

create table if not exists bronze.load_batches (
    batch_id     uuid primary key,
    source       text not null,
    source_file  text not null,
    file_hash    text not null,
    size_bytes   bigint not null,
    row_count    integer not null,
    parse_errors integer not null,
    loaded_at    timestamptz not null default now(),
    unique (source, file_hash)
);

-- One table per source (assay.landing.files.SOURCES), all of this layout:
-- - bronze_id: identity, unique by construction. No primary-key index: this append-only table is read
--   by full scans in silver, and maintaining the index cost as much as parsing the JSON.
-- - batch_id: no foreign key to load_batches. Rows and their ledger entry commit in one transaction,
--   and a per-row referential check would cost more than the rest of the load.
-- - content_hash: of the normalised payload, or of the raw line when it did not parse (dropped by 0022).
-- - partition_date: the day in the file's name for the daily-partitioned sources, else null: silver
--   selects its window by it without parsing business dates. A BRIN index (a few pages, nearly free to
--   keep up on an append-only table whose rows arrive roughly in day order) lets silver read one window.
create table if not exists bronze.transactions (
    bronze_id    bigint generated always as identity,
    batch_id     uuid not null,
    source_file  text not null,
    line_number  integer not null,
    record       jsonb,
    raw_text     text,
    parse_error  text,
    content_hash text not null generated always as (md5(coalesce(record::text, raw_text))) stored,
    loaded_at    timestamptz not null default now(),
    partition_date date,
    check ((record is null) = (parse_error is not null))
);
-- the other sources are laid out alike, and every source has the partition column (tables made
-- before partitions existed get it here) and its BRIN index
do $$
declare
    source text;
begin
    foreach source in array array['events', 'vendors', 'employees'] loop
        execute format(
            'create table if not exists bronze.%I (like bronze.transactions including all excluding indexes)',
            source
        );
    end loop;
    foreach source in array array['transactions', 'events', 'vendors', 'employees'] loop
        execute format('alter table bronze.%I add column if not exists partition_date date', source);
        execute format(
            'create index if not exists %I on bronze.%I using brin (partition_date) with (autosummarize = on)',
            source || '_partition_date', source
        );
    end loop;
end
$$;
