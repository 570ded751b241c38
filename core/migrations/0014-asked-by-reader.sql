-- The read API records each `POST /v1/ask` in agents.asked_questions as the read-only role, through
-- `agents.record_asked`: a SECURITY DEFINER function (owned by the pipeline owner) that inserts one
-- row and returns its id. The reader has EXECUTE on it and no privilege on the table, so the API
-- process needs no owner connection for its one write (as `audit.record_access`, 0013).
-- depends: 0013-access-audit

create or replace function agents.record_asked(asked jsonb) returns bigint
language sql security definer set search_path = pg_catalog, pg_temp as $$
    insert into agents.asked_questions
        (via, asked_by, api_key_id, question, answer, abstained, query, sql, params, rows)
    values (
        asked ->> 'via', asked ->> 'asked_by', asked ->> 'api_key_id', asked ->> 'question',
        asked ->> 'answer', (asked ->> 'abstained')::boolean, nullif(asked -> 'query', 'null'::jsonb),
        asked ->> 'sql', coalesce(asked -> 'params', '[]'::jsonb), coalesce(asked -> 'rows', '[]'::jsonb)
    )
    returning asked_id;
$$;

revoke all on function agents.record_asked(jsonb) from public;
grant usage on schema agents to assay_reader;
grant execute on function agents.record_asked(jsonb) to assay_reader;
