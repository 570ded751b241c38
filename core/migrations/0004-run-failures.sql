-- Failed runs (assay.orchestration.failures): one row per run, written by the run-failure sensor
-- and by `assay run`.
-- depends: 0003-quality

create table if not exists quality.run_failures (
    run_id       text primary key,
    job_name     text not null,
    failed_at    timestamptz not null default now(),
    failed_steps text[] not null,
    message      text not null,
    errors       jsonb not null,  -- step key -> the root cause of its error
    tags         jsonb not null
);
