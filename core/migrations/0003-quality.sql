-- The quality store (assay.quality.store): DQ score history, every check result, the daily reports.
-- depends: 0002-search-index

create table if not exists quality.dq_scores (
    run_id       text not null,
    table_name   text not null,
    layer        text not null,
    row_count    bigint not null,
    input_rows   bigint not null,
    completeness double precision not null,
    uniqueness   double precision not null,
    validity     double precision not null,
    timeliness   double precision not null,
    overall      double precision not null,
    threshold    double precision not null,
    passed       boolean not null,
    details      jsonb not null default '{}',
    measured_at  timestamptz not null default now(),
    primary key (run_id, table_name)
);
create index if not exists dq_scores_latest on quality.dq_scores (table_name, measured_at desc);

create table if not exists quality.check_results (
    result_id    bigint generated always as identity primary key,
    run_id       text not null,
    asset_key    text not null,
    check_name   text not null,
    passed       boolean not null,
    severity     text not null,
    description  text,
    metadata     jsonb not null default '{}',
    evaluated_at timestamptz not null default now()
);
create index if not exists check_results_latest on quality.check_results (asset_key, check_name, evaluated_at desc);

create table if not exists quality.daily_reports (
    report_date  date primary key,
    run_id       text not null,
    report       jsonb not null,
    markdown     text not null,
    created_at   timestamptz not null default now()
);
