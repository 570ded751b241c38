-- Questions asked on demand (`assay ask`, `POST /v1/ask`) and their answers, for a team to review:
-- who asked through which key, when, the answer, the structured query, the SQL and its parameters.
-- depends: 0010-bronze-quarantine

create table if not exists agents.asked_questions (
    asked_id     bigint generated always as identity primary key,
    asked_at     timestamptz not null default now(),
    via          text not null check (via in ('cli', 'api')),
    asked_by     text not null,
    api_key_id   text,
    question     text not null,
    answer       text not null,
    abstained    boolean not null,
    query        jsonb,
    sql          text,
    params       jsonb not null default '[]',
    rows         jsonb not null default '[]'
);
create index if not exists asked_questions_at on agents.asked_questions (asked_at desc);
