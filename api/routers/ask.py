"""`POST /v1/ask`: a question about spend answered from the gold marts' semantic layer.

The same path as `assay ask` (agents/ask.py): the question is parsed into a structured query over
the semantic layer (dbt_project/models/gold/semantic_layer.yml), compiled to parameterised SQL and run
on a connection of the API's read-only pool; the answer sentence is rendered from the result. The
question is data: nothing in it becomes SQL or an instruction. A question the layer cannot answer gets
`abstained: true` and the reason, never a number. Each question is recorded in
agents.asked_questions with the key that asked it.
"""

import functools
from typing import Annotated, Any

import psycopg
from fastapi import FastAPI, Request
from pydantic import BaseModel, ConfigDict, Field

from assay.agents.ask import Asker
from assay.agents.ask_log import record
from assay.agents.ask_render import Answer
from assay.agents.tools.db import ReaderSession
from assay.api.audit import note
from assay.api.errors import ApiError, error_responses
from assay.api.keys import Principal
from assay.api.state import SECURED, AppState, admit

SCOPE = "ask"
TAG = "ask"
MAX_QUESTION_CHARS = 500
ROW_CAP = 50


class AskRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    question: str = Field(
        min_length=3, max_length=MAX_QUESTION_CHARS, pattern=r"^[^\x00]*$", description="The question"
    )


class AskResponse(BaseModel):
    question: str
    answer: str = Field(description="The sentence, rendered from the result (value, unit, period)")
    abstained: bool = Field(description="True: assay cannot answer this; `answer` says why")
    stated: Any = Field(description="The value (or the top entity) the answer states; null on abstention")
    query: dict[str, Any] | None = Field(description="The structured query over the semantic layer")
    sql: str | None = Field(description="The SQL run, with %s placeholders")
    params: list[Any] = Field(description="The bound values of the placeholders, in order")
    columns: list[str]
    rows: list[list[Any]] = Field(description="The gold rows the answer read")
    provenance: list[str] = Field(description="The relations the answer read")
    sources: list[dict[str, Any]] = Field(
        default_factory=list,
        description="For each transaction the answer names: transaction_id, landing `file` and `line`",
    )


def install(app: FastAPI, state: AppState) -> None:
    admitted = admit(SCOPE)  # key and scope, before the body is validated

    @app.post(
        "/v1/ask",
        tags=[TAG],
        responses=error_responses(400, 401, 403, 429, 503),
        response_model=AskResponse,
        summary="Ask a question about spend; the answer comes with its query, SQL and rows",
        openapi_extra=SECURED,
        dependencies=[admitted],
    )
    async def ask(
        body: AskRequest, principal: Annotated[Principal, admitted], request: Request
    ) -> dict[str, Any]:
        note(request.scope, subject=body.question)

        def run(conn: psycopg.Connection) -> Answer:
            session = ReaderSession.on(conn, row_cap=ROW_CAP)
            return Asker(session).ask(body.question)

        answer = await state.db.run_sync(run, table="gold.monthly_summary")
        for relation in answer.provenance:  # a key restricted to some marts reads only those
            mart = relation.split(".", 1)[1]
            # name the mart: the question does not (a vendor's figure for a year reads vendor_monthly)
            if not principal.may_read(mart):
                raise ApiError(
                    403, f"this answer reads {relation}, a mart this API key is not allowed to read"
                )
            if principal.masked(mart):  # the answer's rows and sentence would carry masked values
                masks = ", ".join(sorted(principal.masked(mart)))
                raise ApiError(
                    403, f"this API key masks columns of {mart} ({masks}), which this answer reads"
                )
        # the one write, as the reader through a SECURITY DEFINER function (agents/ask_log.py)
        asker = {"via": "api", "asked_by": principal.name, "key_id": principal.key_id}
        await state.db.run_sync(functools.partial(record, answer=answer, **asker))
        note(request.scope, rows=len(answer.rows))
        return answer.as_dict()
