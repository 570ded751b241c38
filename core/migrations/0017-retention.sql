-- Retention (assay.core.retention): the first day each layer keeps. `apply_retention` (and
-- `assay retention`) advances these and removes what lies before them. The daily silver models read
-- no bronze day before the bronze horizon, so a rebuild of a removed day changes nothing in silver,
-- and gold and platinum are built from silver's rows on or after their own horizon.
-- depends: 0016-source-lineage

create table if not exists quality.retention_horizons (
    layer      text primary key check (layer in ('bronze', 'silver', 'gold', 'platinum', 'history', 'audit')),
    keep_from  date not null,
    applied_at timestamptz not null default now()
);
