-- The agents' store (assay.agents.store): every run, the latest valid answer per task and input, and
-- the analyst questions (their seed rows are inserted by the store, not here).
-- depends: 0004-run-failures

create table if not exists agents.runs (
    run_id       bigint generated always as identity primary key,
    task         text not null,
    input_key    text not null,
    status       text not null check (status in ('succeeded', 'failed')),
    answer       jsonb,
    citations    text[] not null default '{}',
    steps        jsonb not null default '[]',
    backend      text not null,
    model        text not null,
    device       text,
    input_hash   text not null,
    prompt_hash  text not null,
    model_hash   text not null,
    cache_key    text not null,
    tokens_in    integer not null default 0,
    tokens_out   integer not null default 0,
    latency_ms   double precision,
    error        text,
    batch_id     text,
    created_at   timestamptz not null default now()
);
create index if not exists runs_task_key on agents.runs (task, input_key, created_at desc);

create table if not exists agents.answers (
    task         text not null,
    input_key    text not null,
    answer       jsonb not null,
    citations    text[] not null default '{}',
    cache_key    text not null,
    run_id       bigint not null references agents.runs (run_id),
    model        text not null,
    backend      text not null,
    updated_at   timestamptz not null default now(),
    primary key (task, input_key)
);

create table if not exists agents.questions (
    question_id   text primary key,
    question      text not null,
    expected_sql  text,
    answer_type   text not null default 'text' check (answer_type in ('text', 'number')),
    created_at    timestamptz not null default now()
);
