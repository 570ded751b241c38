"""Agent tasks as Dagster assets (group `agents`): one asset per task, downstream of what it reads.

Each asset runs its task's batch through the lockstep runner, stores runs and answers in the
`agents` schema, and reports its evaluation as an asset check on itself. The assets share the
concurrency pool `llm`, so two tasks never compete for the same CPU or GPU at once.
"""

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    Config,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from assay.agents.backends import LLMResource
from assay.agents.evaluation import (
    Evaluation,
    categorisation_accuracy,
    citation_validity,
    explanation_faithfulness,
    question_accuracy,
)
from assay.agents.runner import TaskOutcome, run_task
from assay.agents.store import AgentStore
from assay.agents.tasks import TASKS, Task
from assay.agents.tools import ReaderSession
from assay.core.database import PostgresResource
from assay.core.models import EmbeddingModelResource
from assay.core.settings import get_settings
from assay.core.text import printable

GROUP = "agents"
QUESTIONS = AssetKey([GROUP, "questions"])


class AgentRunConfig(Config):
    limit: int | None = Field(
        default=None, description="Run at most this many inputs (the first by key); empty = all of them."
    )


# task name -> (check name, description, severity when it fails, blocking)
CHECKS = {
    "categorise": (
        "categorisation_accuracy",
        "Accuracy against the sample's ground truth, beside the nearest-neighbour baseline on the same "
        "retrieval, and the LLM's pick against the baseline's where the neighbours disagree (the only "
        "inputs it is asked about); warns when the answers are below the baseline.",
        AssetCheckSeverity.WARN,
        False,
    ),
    "explain_anomalies": (
        "citation_validity",
        "Every cited transaction id exists and belongs to its anomaly's week and category (must be 100 %).",
        AssetCheckSeverity.ERROR,
        True,
    ),
    "answer_questions": (
        "question_accuracy",
        "Answers against each question's reference SQL run directly over gold, and Ask assay's accuracy,"
        " wrong-answer and abstention rates on its evaluation set (agents/ask_eval.py); warns below 50 %"
        " or at 5 % wrong answers.",
        AssetCheckSeverity.WARN,
        False,
    ),
}


# further checks: task name -> (check name, description, severity, blocking, evaluation of the outcome)
MORE_CHECKS = {
    "explain_anomalies": (
        "explanation_faithfulness",
        "Every number and date an explanation states appears in its anomaly's facts or its cited "
        "transactions (must be 100 %).",
        AssetCheckSeverity.ERROR,
        True,
        explanation_faithfulness,
    ),
}


def _evaluate(task: Task, outcome: TaskOutcome, postgres: PostgresResource) -> Evaluation:
    if task.name == "categorise":
        return categorisation_accuracy(outcome, get_settings().truth_dir / "transactions.csv")
    with ReaderSession(postgres.reader_url()) as session:
        if task.name == "explain_anomalies":
            return citation_validity(session, outcome)
        return question_accuracy(session, outcome)


def _metadata(values: dict) -> dict[str, MetadataValue]:
    out: dict[str, MetadataValue] = {}
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int | float):
            out[name] = (
                MetadataValue.md(value) if str(value).startswith("|") else MetadataValue.text(str(value))
            )
        elif isinstance(value, int):
            out[name] = MetadataValue.int(value)
        else:
            out[name] = MetadataValue.float(float(value))
    return out


def task_asset(task_cls: type[Task]) -> AssetsDefinition:
    task = task_cls()
    key = AssetKey([GROUP, task.asset_name or task.name])
    check = CHECKS.get(task.name)
    more = MORE_CHECKS.get(task.name)
    specs = [AssetCheckSpec(c[0], asset=key, description=c[1], blocking=c[3]) for c in (check, more) if c]

    @asset(
        key=key,
        deps=[AssetKey(path.split("/")) for path in task.reads],
        group_name=GROUP,
        kinds={"python", "postgres"},
        description=task.description or task_cls.__doc__,
        check_specs=specs,
        pool="llm",
    )
    def _run(
        context: AssetExecutionContext,
        config: AgentRunConfig,
        postgres: PostgresResource,
        llm: LLMResource,
        embedding_model: EmbeddingModelResource,
    ) -> MaterializeResult:
        backend = llm.get()
        # the search tool and few-shot retrieval embed queries with the same model as the corpus
        outcome = run_task(task, backend, postgres, limit=config.limit, encoders=embedding_model.encoder_for)
        summary = outcome.metadata()
        context.log.info(f"{task.name}: {summary}")
        failures = [f"{run.key}: {run.error}" for run in outcome.report.runs if run.status == "failed"]
        if failures:
            context.log.warning(f"{len(failures)} runs failed, e.g. {failures[:3]}")
        evaluations = []
        if check:
            evaluations.append((check, _evaluate(task, outcome, postgres)))
        if more:
            evaluations.append((more, more[4](outcome)))
        checks = []
        metadata = dict(summary)
        for (name, _, severity, *_), evaluation in evaluations:
            metadata.update({k: v for k, v in evaluation.metadata.items() if not str(v).startswith("|")})
            checks.append(
                AssetCheckResult(
                    check_name=name,
                    passed=evaluation.passed,
                    severity=severity,
                    description=evaluation.description,
                    metadata=_metadata(evaluation.metadata),
                )
            )
        if sources := source_rows(outcome):  # answers that name transactions: where each one landed
            metadata["source_rows"] = sources
        return MaterializeResult(metadata=_metadata(metadata), check_results=checks)

    return _run


def source_rows(outcome: TaskOutcome, limit: int = 20) -> str:
    """A markdown table of the landing file and line of every transaction the answers name (issue:
    answers traceable to source rows); empty when no answer names one."""
    lines = [
        f"| {run.key} | {printable(src['transaction_id'])} | {printable(src['file'])} | {src['line']} |"
        for run in outcome.report.runs
        if run.status == "succeeded"
        for src in (run.answer or {}).get("sources") or []
    ]
    if not lines:
        return ""
    more = [f"| ... | {len(lines) - limit} more | | |"] if len(lines) > limit else []
    header = ["| answer | transaction | landing file | line |", "|---|---|---|---|"]
    return "\n".join([*header, *lines[:limit], *more])


@asset(
    key=QUESTIONS,
    group_name=GROUP,
    kinds={"postgres"},
    description="Analyst questions the question-answering agent answers (seeded; add rows to ask more).",
)
def questions(postgres: PostgresResource) -> MaterializeResult:
    count = AgentStore(postgres).seed_questions()
    return MaterializeResult(metadata={"questions": MetadataValue.int(count)})


agent_assets = [questions, *(task_asset(cls) for cls in TASKS.values())]
