-- Quarantined rows (assay.landing.quarantine): bronze rows that made a silver step fail in a way no
-- reject rule covers (a database error on their data). The run that met the error isolated them,
-- wrote them here with the error, and went on; the silver checked models reject a quarantined row
-- as `quarantined` (silver.rejects shows the error as its `detail`). `assay bronze quarantine
-- release ID` sets `released_at`: the row goes through the rules again at the next run.
-- depends: 0009-api-key-expiry

create table if not exists bronze.quarantine (
    quarantine_id bigint generated always as identity primary key,
    source text not null,
    bronze_id bigint not null,
    reason text not null,
    step text not null,
    quarantined_at timestamptz not null default now(),
    released_at timestamptz
);

-- one open quarantine per row; a released row can be quarantined again
create unique index if not exists quarantine_open on bronze.quarantine (source, bronze_id)
    where released_at is null;
