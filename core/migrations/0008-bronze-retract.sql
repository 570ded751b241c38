-- Superseded and retracted files (assay.landing.bronze): a batch is active until a newer version of
-- its file supersedes it or a user retracts it (`assay bronze retract`). Silver reads each source
-- through `bronze.<source>_active`, so neither kind of row reaches it, and both stay in bronze for audit.
-- depends: 0007-check-results-once

alter table bronze.load_batches
    add column if not exists retracted_at timestamptz,
    add column if not exists retracted_reason text,
    add column if not exists superseded_by uuid;

do $$
declare
    source text;
begin
    foreach source in array array['transactions', 'events', 'vendors', 'employees'] loop
        -- made once: a later migration (0022) redefines them, and applying this one again (the
        -- baseline is idempotent) must not undo that
        continue when to_regclass(format('bronze.%I', source || '_active')) is not null;
        execute format(
            'create view bronze.%I as select t.* from bronze.%I as t where not exists ('
            ' select from bronze.load_batches as b where b.batch_id = t.batch_id'
            ' and (b.retracted_at is not null or b.superseded_by is not null))',
            source || '_active', source
        );
    end loop;
end
$$;
