"""`/v1/answers`: the agents' stored answers, with their citations and where they came from.

Reads `agents.answers` (the latest valid answer per task and input key), joined to `agents.runs`
(the run that produced it: model, prompt hash, tokens, trace) and, for one answer, the cited rows of
`platinum.documents`. Task names come from the agents' own registry; every value is bound.
"""

import datetime as dt
from typing import Annotated, Any

from fastapi import FastAPI, Path, Query, Request
from pydantic import BaseModel, Field

from assay.agents.tasks import TASKS
from assay.api import pages
from assay.api.audit import note
from assay.api.errors import ApiError, error_responses
from assay.api.state import SECURED, AppState, admit

SCOPE = "answers"
TAG = "answers"
ANSWERS = "agents.answers"
RUNS = "agents.runs"
DOCUMENTS = "platinum.documents"

_COLUMNS = """
    a.task, a.input_key, a.answer, a.citations, a.model, a.backend, a.updated_at,
    r.run_id, r.device, r.prompt_hash, r.model_hash, r.input_hash, r.cache_key,
    r.tokens_in, r.tokens_out, r.latency_ms, r.created_at
"""
_FROM = "from agents.answers a join agents.runs r on r.run_id = a.run_id"
_TASKS = (
    "select t.task, count(a.input_key), max(a.updated_at) from unnest(%s::text[]) as t(task)"
    " left join agents.answers a on a.task = t.task group by t.task order by t.task"
)
_FIRST = f"select {_COLUMNS} {_FROM} where a.task = %s order by a.input_key limit %s"
_NEXT = f"select {_COLUMNS} {_FROM} where a.task = %s and a.input_key > %s order by a.input_key limit %s"
_ONE = f"select {_COLUMNS}, r.steps {_FROM} where a.task = %s and a.input_key = %s"
_SOURCES = (
    "select source_id, doc_id, doc_type, title, category, department, vendor_id, doc_date,"
    " amount_eur::float8 from platinum.documents where source_id = any(%s) order by source_id, doc_id"
)


class Provenance(BaseModel):
    run_id: int = Field(description="The run in agents.runs that produced the answer")
    model: str
    backend: str = Field(description="transformers | vllm | openai")
    device: str | None
    prompt_hash: str = Field(description="Hash of the task's prompt template and schema")
    model_hash: str = Field(description="Fingerprint of the model and its generation settings")
    input_hash: str = Field(description="Hash of the input rows the run saw")
    cache_key: str
    tokens_in: int
    tokens_out: int
    latency_ms: float | None
    created_at: dt.datetime = Field(description="When the run finished")


class Answer(BaseModel):
    task: str
    key: str = Field(description="The input's key within its task (transaction id, category:week, ...)")
    answer: dict[str, Any]
    citations: list[str] = Field(description="Ids of the source rows the answer cites")
    updated_at: dt.datetime = Field(description="When this answer was stored")
    provenance: Provenance


class Source(BaseModel):
    source_id: str
    doc_id: str
    doc_type: str | None
    title: str | None
    category: str | None
    department: str | None
    vendor_id: str | None
    doc_date: dt.date | None
    amount_eur: float | None


class AnswerDetail(Answer):
    sources: list[Source] = Field(description="The cited rows of platinum.documents")
    steps: list[dict[str, Any]] = Field(description="The run's trace: model outputs and tool calls")


class AnswerPage(pages.Page):
    task: str
    answers: list[Answer]


class TaskInfo(BaseModel):
    task: str
    answers: int
    updated_at: dt.datetime | None
    rows: str


class TaskList(BaseModel):
    tasks: list[TaskInfo]


def _answer(row: tuple) -> dict[str, Any]:
    task, key, answer, citations, model, backend, updated_at, run_id, device, *rest = row[:17]
    prompt_hash, model_hash, input_hash, cache_key, tokens_in, tokens_out, latency_ms, created_at = rest
    return {
        "task": task,
        "key": key,
        "answer": answer,
        "citations": citations,
        "updated_at": updated_at,
        "provenance": {
            "run_id": run_id,
            "model": model,
            "backend": backend,
            "device": device,
            "prompt_hash": prompt_hash,
            "model_hash": model_hash,
            "input_hash": input_hash,
            "cache_key": cache_key,
            "tokens_in": tokens_in,
            "tokens_out": tokens_out,
            "latency_ms": latency_ms,
            "created_at": created_at,
        },
    }


ERRORS = error_responses(400, 401, 403, 404, 409, 429, 503)


def install(app: FastAPI, state: AppState) -> None:
    admitted = admit(SCOPE)  # key and scope, before any parameter is validated
    tasks = sorted(TASKS)
    settings = state.settings
    PageParams = pages.params_model("AnswerPageParams", settings.page_size_default, settings.page_size_max)
    TaskName = Annotated[str, Path(description=f"One of: {', '.join(tasks)}", max_length=100)]

    def known(task: str) -> str:
        if task not in TASKS:
            raise ApiError(404, f"no agent task {task!r}; tasks are {', '.join(tasks)}")
        return task

    @app.get(
        "/v1/answers",
        tags=[TAG],
        responses=ERRORS,
        response_model=TaskList,
        summary="The agent tasks and how many answers each has",
        openapi_extra=SECURED,
        dependencies=[admitted],
    )
    async def list_tasks(request: Request) -> TaskList:
        rows = await state.db.fetch(_TASKS, [tasks], table=ANSWERS)
        note(request.scope, rows=len(rows))
        return TaskList(
            tasks=[TaskInfo(task=t, answers=n, updated_at=at, rows=f"/v1/answers/{t}") for t, n, at in rows]
        )

    @app.get(
        "/v1/answers/{task}",
        tags=[TAG],
        responses=ERRORS,
        response_model=AnswerPage,
        summary="A task's answers, by input key, page by page",
        openapi_extra=SECURED,
        dependencies=[admitted],
    )
    async def list_answers(
        task: TaskName,
        params: Annotated[PageParams, Query()],
        request: Request,  # type: ignore[valid-type]
    ) -> dict[str, Any]:
        known(task)
        if params.cursor:
            (after,) = pages.decode(params.cursor, (str,))
            rows = await state.db.fetch(_NEXT, [task, after, params.limit + 1], table=ANSWERS)
        else:
            rows = await state.db.fetch(_FIRST, [task, params.limit + 1], table=ANSWERS)
        rows, cursor = pages.split(rows, params.limit, lambda r: r[1:2])
        note(request.scope, rows=len(rows))
        return {"task": task, "answers": [_answer(r) for r in rows], "next_cursor": cursor}

    @app.get(
        "/v1/answers/{task}/{key:path}",
        tags=[TAG],
        responses=ERRORS,
        response_model=AnswerDetail,
        summary="One answer with its cited rows and the run's trace",
        openapi_extra=SECURED,
        dependencies=[admitted],
    )
    async def get_answer(
        task: TaskName,
        key: Annotated[str, Path(description="The input key (URL-encoded)", max_length=1000)],
        request: Request,
    ) -> dict[str, Any]:
        known(task)
        note(request.scope, subject=f"{task}/{key}")
        rows = await state.db.fetch(_ONE, [task, key], table=ANSWERS)
        if not rows:
            raise ApiError(404, f"no answer of task {task!r} for key {key!r} (yet)")
        row = rows[0]
        answer = _answer(row)
        sources = await state.db.fetch(_SOURCES, [answer["citations"]], table=DOCUMENTS) if row[3] else []
        fields = Source.model_fields
        note(request.scope, rows=1)
        return {**answer, "sources": [dict(zip(fields, s, strict=True)) for s in sources], "steps": row[17]}
