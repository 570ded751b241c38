"""The read API's answer, search, process and quality endpoints over real HTTP, against the session's
pipeline output and a real agent run (`agent_answers`).

Expected rows come from direct SQL as the owner, never from the API's own query code.
"""

import json
import math

import httpx
import numpy as np
import pytest
from pgvector.psycopg import register_vector


@pytest.fixture(scope="module")
def client(api_server, api_keys):
    with httpx.Client(
        base_url=api_server, headers={"Authorization": f"Bearer {api_keys['admin']}"}, timeout=30
    ) as c:
        yield c


def _ok(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def _page_all(client, path: str, items: str, **params) -> tuple[list[dict], int]:
    rows, requests, cursor = [], 0, None
    while True:
        body = _ok(client.get(path, params=dict(params, **({"cursor": cursor} if cursor else {}))))
        rows += body[items]
        requests += 1
        cursor = body["next_cursor"]
        if cursor is None:
            return rows, requests


def _same_time(api_text: str, db_value) -> bool:
    from datetime import datetime

    return datetime.fromisoformat(api_text) == db_value


# answers ----------------------------------------------------------------------------------------
def test_answer_tasks_with_their_counts(client, conn, agent_answers):
    from assay.agents.tasks import TASKS

    counts = dict(conn.execute("select task, count(*) from agents.answers group by task").fetchall())
    listed = {t["task"]: t for t in _ok(client.get("/v1/answers"))["tasks"]}
    assert set(listed) == set(TASKS)
    assert {t: v["answers"] for t, v in listed.items()} == {t: counts.get(t, 0) for t in TASKS}
    assert listed[agent_answers]["answers"] >= 3 and listed[agent_answers]["rows"] == "/v1/answers/categorise"


@pytest.mark.parametrize("limit", [1, 2, 50])
def test_answer_pages_return_each_answer_once_as_stored(client, conn, agent_answers, limit):
    expected = conn.execute(
        "select a.input_key, a.answer, a.citations, a.model, a.backend, r.run_id, r.prompt_hash,"
        " r.model_hash, r.input_hash, r.tokens_out, r.created_at, a.updated_at"
        " from agents.answers a join agents.runs r using (run_id) where a.task = %s",
        [agent_answers],
    ).fetchall()
    rows, requests = _page_all(client, f"/v1/answers/{agent_answers}", "answers", limit=limit)
    assert len(rows) == len(expected) >= 3
    assert requests == max(1, -(-len(expected) // limit))
    assert sorted(r["key"] for r in rows) == sorted(e[0] for e in expected)
    by_key = {r["key"]: r for r in rows}
    for (
        key,
        answer,
        citations,
        model,
        backend,
        run_id,
        prompt,
        model_hash,
        input_hash,
        out,
        created,
        upd,
    ) in expected:
        got = by_key[key]
        prov = got["provenance"]
        assert got["task"] == agent_answers and got["answer"] == answer and got["citations"] == citations
        assert (prov["model"], prov["backend"], prov["run_id"]) == (model, backend, run_id)
        assert (prov["prompt_hash"], prov["model_hash"], prov["input_hash"]) == (
            prompt,
            model_hash,
            input_hash,
        )
        assert prov["tokens_out"] == out
        # categorise prompts the model only where the neighbours disagree
        assert (out > 0) == (answer["decided_by"] != "neighbours_agree")
        assert _same_time(prov["created_at"], created) and _same_time(got["updated_at"], upd)
    assert prov["model"] == "SmolLM2-135M-Instruct.Q4_1" and prov["backend"] == "transformers"


def test_one_answer_with_its_cited_rows_and_trace(client, conn, agent_answers):
    key, citations, steps = conn.execute(
        "select a.input_key, a.citations, r.steps from agents.answers a join agents.runs r using (run_id)"
        " where a.task = %s and cardinality(a.citations) > 0 order by a.input_key limit 1",
        [agent_answers],
    ).fetchone()
    body = _ok(client.get(f"/v1/answers/{agent_answers}/{key}"))
    assert body["key"] == key and body["citations"] == citations and body["steps"] == steps
    sources = conn.execute(
        "select source_id, doc_id, doc_type, amount_eur::float8 from platinum.documents"
        " where source_id = any(%s) order by source_id, doc_id",
        [citations],
    ).fetchall()
    assert len(sources) >= 1
    assert [(s["source_id"], s["doc_id"], s["doc_type"], s["amount_eur"]) for s in body["sources"]] == sources
    assert {s["source_id"] for s in body["sources"]} == set(citations)


def test_missing_answers_and_tasks_are_404_with_a_reason(client, agent_answers):
    missing = client.get(f"/v1/answers/{agent_answers}/no-such-key")
    assert missing.status_code == 404 and "no answer of task 'categorise'" in missing.json()["detail"]
    unknown = client.get("/v1/answers/no_such_task")
    assert unknown.status_code == 404 and "tasks are answer_questions, categorise" in unknown.json()["detail"]
    assert client.get("/v1/answers/no_such_task/x").status_code == 404
    bad_cursor = client.get(f"/v1/answers/{agent_answers}", params={"cursor": "bm90IGEgY3Vyc29y"})
    assert bad_cursor.status_code == 400 and "cursor" in bad_cursor.json()["detail"]
    assert client.get(f"/v1/answers/{agent_answers}", params={"limt": 3}).status_code == 400


# search -----------------------------------------------------------------------------------------
def _active_model(conn) -> str:
    return conn.execute("select model from platinum.embedding_models where active").fetchone()[0]


def test_vector_search_returns_the_nearest_documents_by_direct_sql(client, conn):
    from assay.core.models import EmbeddingModelResource

    register_vector(conn)
    model = _active_model(conn)
    vector = EmbeddingModelResource().encoder_for(model).encode_queries(["flight to London"])[0]
    params = {"q": "flight to London", "method": "vector", "k": 8}
    body = _ok(client.get("/v1/search", params=params))
    expected = conn.execute(
        "select doc_id, 1 - (embedding <=> %s) from platinum.embeddings where model = %s"
        " order by embedding <=> %s, doc_id limit 8",
        [vector, model, vector],
    ).fetchall()
    assert body["model"] == model and body["method"] == "vector" and body["k"] == 8
    assert [h["doc_id"] for h in body["hits"]] == [e[0] for e in expected]
    assert all(
        math.isclose(h["score"], e[1], abs_tol=1e-5) for h, e in zip(body["hits"], expected, strict=True)
    )
    assert [h["rank"] for h in body["hits"]] == list(range(1, 9))

    # filters: category (any of two), a date range; the same SQL with the same conditions
    category = conn.execute(
        "select category from platinum.embeddings where category is not null"
        " group by 1 order by count(*) desc limit 2"
    ).fetchall()
    categories = [c[0] for c in category]
    filtered = {**params, "category": categories, "date_from": "2025-02-01", "date_to": "2025-05-31"}
    body = _ok(client.get("/v1/search", params=filtered))
    expected = conn.execute(
        "select doc_id from platinum.embeddings where model = %s and category = any(%s)"
        " and doc_date between '2025-02-01' and '2025-05-31' order by embedding <=> %s, doc_id limit 8",
        [model, categories, vector],
    ).fetchall()
    assert len(expected) == 8
    assert [h["doc_id"] for h in body["hits"]] == [e[0] for e in expected]
    assert all(
        h["category"] in categories and "2025-02-01" <= h["doc_date"] <= "2025-05-31" for h in body["hits"]
    )


def test_fulltext_search_matches_direct_sql(client, conn):
    model = _active_model(conn)
    query = "hotel room for a conference"
    body = _ok(
        client.get(
            "/v1/search", params={"q": query, "method": "fulltext", "k": 10, "doc_type": "transaction"}
        )
    )
    # any of the query's lexemes, ranked by cover density; written here from the text, not the library
    lexemes = [r[0] for r in conn.execute("select lexeme from unnest(to_tsvector('english', %s))", [query])]
    assert lexemes == ["confer", "hotel", "room"]
    tsquery = " | ".join(lexemes)
    expected = conn.execute(
        "select doc_id, ts_rank_cd(search_tsv, to_tsquery('simple', %s)) as rank from platinum.embeddings"
        " where model = %s and doc_type = 'transaction' and search_tsv @@ to_tsquery('simple', %s)"
        " order by rank desc, doc_id limit 10",
        [tsquery, model, tsquery],
    ).fetchall()
    assert len(expected) == 10
    assert {h["doc_id"] for h in body["hits"]} == {e[0] for e in expected}
    assert [h["score"] for h in body["hits"]] == pytest.approx([e[1] for e in expected], rel=1e-5)
    assert all(h["doc_type"] == "transaction" for h in body["hits"])


def test_hybrid_search_is_the_search_librarys(client, postgres):
    from assay.core.models import EmbeddingModelResource
    from assay.search.searcher import Filters, Searcher

    with postgres.connect(autocommit=True) as owner:
        expected = Searcher(owner, EmbeddingModelResource().encoder_for).search(
            "toner for the office printer", "hybrid", 12, Filters(department=["Operations", "Finance"])
        )
    body = _ok(
        client.get(
            "/v1/search",
            params={"q": "toner for the office printer", "k": 12, "department": ["Operations", "Finance"]},
        )
    )
    assert body["method"] == "hybrid" and len(expected.hits) == 12
    assert [(h["doc_id"], h["vector_rank"], h["text_rank"]) for h in body["hits"]] == [
        (h.doc_id, h.vector_rank, h.text_rank) for h in expected.hits
    ]
    assert np.allclose([h["score"] for h in body["hits"]], [h.score for h in expected.hits])


@pytest.mark.parametrize(
    ("params", "fragment"),
    [
        ({"q": "x", "method": "semantic"}, "method"),
        ({"q": "x", "k": 0}, "k"),
        ({"q": "x", "k": 51}, "k"),
        ({"q": ""}, "q"),
        ({}, "q"),
        ({"q": "x" * 1001}, "q"),
        ({"q": "x", "date_from": "2025-05-01", "date_to": "2025-04-01"}, "date_from is after date_to"),
        ({"q": "x", "date_from": "2025-02-30"}, "date_from"),
        ({"q": "x", "category": ["a"] * 11}, "category"),
        ({"q": "x", "categroy": "travel"}, "categroy"),
        ({"q": "x", "vendor_id": ""}, "vendor_id"),
    ],
)
def test_bad_search_requests_are_400_with_a_reason(client, params, fragment):
    response = client.get("/v1/search", params=params)
    assert response.status_code == 400, response.text
    assert fragment in response.json()["detail"]


# process mining ---------------------------------------------------------------------------------
def _records(conn, query: str, params=()) -> list[dict]:
    cursor = conn.execute(query, params)
    names = [c.name for c in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def _plain(rows: list[dict]) -> list[dict]:
    """Database values as the API's JSON carries them."""
    return json.loads(
        json.dumps(rows, default=lambda v: v.isoformat() if hasattr(v, "isoformat") else str(v))
    )


def test_process_variants_paged_like_the_table(client, conn):
    expected = _records(conn, "select * from gold.process_variants order by variant_rank, variant_id")
    rows, requests = _page_all(client, "/v1/process/variants", "variants", limit=7)
    assert len(expected) > 7 and requests == -(-len(expected) // 7)
    assert rows == _plain(expected)


def test_process_dfg_bottlenecks_and_conformance_like_the_tables(client, conn):
    dfg = _ok(client.get("/v1/process/dfg"))
    expected = _records(conn, "select * from gold.process_dfg")
    key = lambda r: (r["edge_kind"], r["source"] or "", r["target"] or "")  # noqa: E731
    assert not dfg["truncated"] and sorted(dfg["edges"], key=key) == sorted(_plain(expected), key=key)
    assert [e["frequency"] for e in dfg["edges"]] == sorted(
        (e["frequency"] for e in dfg["edges"]), reverse=True
    )
    starts = _ok(client.get("/v1/process/dfg", params={"edge_kind": "start"}))["edges"]
    assert starts and len(starts) == sum(e["edge_kind"] == "start" for e in expected)

    waits = _ok(client.get("/v1/process/bottlenecks", params={"kind": "activity"}))["bottlenecks"]
    expected = _records(conn, "select * from gold.process_bottlenecks where kind = 'activity'")
    assert waits == _plain(
        sorted(expected, key=lambda r: (r["rank_by_total"], r["source"] or "", r["target"]))
    )

    models = _ok(client.get("/v1/process/conformance"))["models"]
    expected = _records(
        conn,
        "select model, source, version, places, transitions, silent_transitions, arcs, log_fitness,"
        " fitting_case_share from gold.process_model order by model",
    )
    assert models == _plain(expected) and {m["model"] for m in models} >= {"reference"}


def test_conformance_cases_paged_and_filtered(client, conn):
    (variant,) = conn.execute(
        "select variant_id from gold.process_conformance where not is_fit"
        " group by 1 order by count(*) desc limit 1"
    ).fetchone()
    expected = _records(
        conn,
        "select * from gold.process_conformance where not is_fit and variant_id = %s order by case_id",
        [variant],
    )
    rows, _ = _page_all(
        client, "/v1/process/conformance/cases", "cases", is_fit="false", variant_id=variant, limit=3
    )
    assert len(expected) >= 1 and rows == _plain(expected)
    (unfit,) = conn.execute("select count(*) from gold.process_conformance where not is_fit").fetchone()
    rows, _ = _page_all(client, "/v1/process/conformance/cases", "cases", is_fit="false", limit=50)
    assert len(rows) == unfit and len({r["case_id"] for r in rows}) == unfit


# quality ----------------------------------------------------------------------------------------
def test_latest_dq_scores_and_history(client, conn):
    latest = _ok(client.get("/v1/quality/scores"))["scores"]
    expected = _records(
        conn,
        "select distinct on (table_name) table_name as table, layer, run_id, overall, completeness, passed,"
        " window_start::text, window_end::text, table_rows, measured_at"
        " from quality.dq_scores order by table_name, measured_at desc, run_id desc",
    )
    assert len(expected) >= 3
    fields = (
        "table",
        "layer",
        "run_id",
        "overall",
        "completeness",
        "passed",
        "window_start",
        "window_end",
        "table_rows",
    )
    assert [tuple(s[f] for f in fields) for s in latest] == [tuple(e[f] for f in fields) for e in expected]
    assert all(_same_time(s["measured_at"], e["measured_at"]) for s, e in zip(latest, expected, strict=True))

    table = expected[0]["table"]
    history = _ok(client.get("/v1/quality/scores", params={"table": table, "history": 100}))["scores"]
    runs = conn.execute(
        "select run_id from quality.dq_scores where table_name = %s order by measured_at desc, run_id desc",
        [table],
    ).fetchall()
    assert [s["run_id"] for s in history] == [r[0] for r in runs]
    gold = _ok(client.get("/v1/quality/scores", params={"layer": "gold"}))["scores"]
    assert gold and {s["table"] for s in gold} == {e["table"] for e in expected if e["layer"] == "gold"}


def test_latest_check_results_and_failing_filter(client, conn):
    body = _ok(client.get("/v1/quality/checks"))
    expected = conn.execute(
        "select distinct on (asset_key, check_name) asset_key, check_name, passed, run_id"
        " from quality.check_results order by asset_key, check_name, evaluated_at desc, result_id desc"
    ).fetchall()
    assert len(expected) >= 5
    assert [(c["asset_key"], c["check_name"], c["passed"], c["run_id"]) for c in body["checks"]] == expected
    assert body["failing"] == sum(not e[2] for e in expected)
    failing = _ok(client.get("/v1/quality/checks", params={"passed": "false"}))
    assert [(c["asset_key"], c["check_name"]) for c in failing["checks"]] == [
        e[:2] for e in expected if not e[2]
    ]
    asset = expected[0][0]
    one = _ok(client.get("/v1/quality/checks", params={"asset_key": asset, "history": 3}))["checks"]
    count = conn.execute(
        "select count(*) from (select row_number() over (partition by check_name order by evaluated_at desc)"
        " as n from quality.check_results where asset_key = %s) c where n <= 3",
        [asset],
    ).fetchone()[0]
    assert len(one) == count and {c["asset_key"] for c in one} == {asset}


# not built yet ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("table", "path"),
    [
        ("gold.process_dfg", "/v1/process/dfg"),
        ("gold.process_variants", "/v1/process/variants"),
        ("quality.check_results", "/v1/quality/checks"),
        ("quality.dq_scores", "/v1/quality/scores"),
        ("agents.answers", "/v1/answers/categorise"),
        ("platinum.embedding_models", "/v1/search?q=flight"),
    ],
)
def test_a_table_not_built_yet_is_409_not_500(client, conn, agent_answers, table, path):
    schema, name = table.split(".")
    assert client.get(path).status_code == 200
    conn.execute(f"alter table {table} rename to {name}__away")
    try:
        response = client.get(path)
        # not 503 + Retry-After: retrying does not build a table; the detail says what does
        assert response.status_code == 409, response.text
        assert response.headers["content-type"] == "application/problem+json"
        detail = response.json()["detail"]
        assert "does not exist yet" in detail and "Retry-After" not in response.headers
        assert ("`assay run --agents`" if table.startswith("agents.") else "`assay run`") in detail
        for leak in ("Traceback", "psycopg", "select ", "relation"):
            assert leak not in response.text
    finally:
        conn.execute(f"alter table {schema}.{name}__away rename to {name}")
    assert client.get(path).status_code == 200
