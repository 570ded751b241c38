"""How good the agents' answers are, measured against references computed without the model.

- categorise: accuracy against the sample generator's ground truth, side by side with the
  nearest-neighbour baseline (majority label of the same retrieved examples);
- explain_anomalies: citation validity, re-checked in SQL against platinum.documents;
- answer_questions: accuracy against each question's `expected_sql`, run directly over gold.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from assay.agents.runner import TaskOutcome
from assay.agents.tasks.categorise import LLM_DECIDES
from assay.agents.tools import ReaderSession, ToolError


@dataclass
class Evaluation:
    passed: bool
    metadata: dict[str, Any] = field(default_factory=dict)
    description: str = ""


def categorisation_accuracy(outcome: TaskOutcome, truth_csv: Path) -> Evaluation:
    """LLM accuracy vs the NN baseline over the inputs whose true category is known.

    Fails (a warning: the asset is still built) when the model does worse than the baseline: that
    says the few-shot examples alone would serve better, which a user should see.
    """
    if not truth_csv.exists():
        return Evaluation(
            True, {"ground_truth": "not found"}, f"no ground truth at {truth_csv}: not measured"
        )
    import polars as pl

    truth = dict(
        pl.read_csv(
            truth_csv,
            columns=["transaction_id", "true_category"],
            schema_overrides={"true_category": pl.String},
        ).iter_rows()
    )
    answers = outcome.answers()
    scored = [i for i in outcome.inputs if truth.get(i.key)]
    if not scored:
        return Evaluation(True, {"evaluated": 0}, "no input has a known true category")
    final = sum(answers.get(i.key, {}).get("category") == truth[i.key] for i in scored)
    baseline = sum(i.data.get("baseline") == truth[i.key] for i in scored)
    answered = sum(i.key in answers for i in scored)
    # where the neighbours disagree the model was asked: its pick against theirs, on those inputs only
    asked = [i for i in scored if answers.get(i.key, {}).get("llm_category") is not None]
    llm_asked = sum(answers[i.key]["llm_category"] == truth[i.key] for i in asked)
    baseline_asked = sum(i.data.get("baseline") == truth[i.key] for i in asked)
    disputed = sum(bool(i.data.get("disputed")) for i in scored)
    n = len(scored)
    metadata = {
        "evaluated": n,
        "answered": answered,
        "accuracy": round(final / n, 4),
        "nn_baseline_accuracy": round(baseline / n, 4),
        "accuracy_minus_baseline": round((final - baseline) / n, 4),
        "neighbours_disagree": disputed,  # the only inputs the model is asked about
        "llm_asked": len(asked),
        "llm_correct_where_asked": llm_asked,
        "baseline_correct_where_asked": baseline_asked,
    }
    decider = "the LLM decides where the neighbours disagree" if LLM_DECIDES else "the baseline decides"
    return Evaluation(
        final >= baseline,
        metadata,
        f"{decider}: {final / n:.1%} against the nearest-neighbour baseline's {baseline / n:.1%} on {n} "
        f"transactions; where the neighbours disagree ({len(asked)} asked) the LLM was right "
        f"{llm_asked} times, the baseline {baseline_asked}",
    )


CITATION_CHECK = """
with cited as (
    select answers.input_key, split_part(answers.input_key, ':', 1) as category,
           split_part(answers.input_key, ':', 2)::date as week_start, unnest(answers.citations) as source_id
    from assay.agents.answers
    where answers.task = 'explain_anomalies'
)
select count(*) as cited,
       count(*) filter (
           where documents.doc_id is not null
             and documents.doc_date between cited.week_start and cited.week_start + 6
             and coalesce(documents.category, 'uncategorised') = cited.category
       ) as valid
from cited
left join platinum.documents
    on documents.doc_type = 'transaction' and documents.source_id = cited.source_id
"""


def citation_validity(session: ReaderSession, outcome: TaskOutcome) -> Evaluation:
    """Every cited id must exist and belong to the anomaly's week and category: 100 % or fail."""
    cited, valid = session.bulk(CITATION_CHECK)[0]
    answers = outcome.answers()
    anomalies = len(outcome.inputs)
    uncited = sum(
        1
        for i in outcome.inputs
        if i.data["transactions"] and not answers.get(i.key, {}).get("cited_transaction_ids")
    )
    validity = valid / cited if cited else 1.0
    metadata = {
        "anomalies": anomalies,
        "explained": sum(i.key in answers for i in outcome.inputs),
        "citations": cited,
        "valid_citations": valid,
        "citation_validity": round(validity, 4),
        "explained_without_citation": uncited,
    }
    return Evaluation(
        cited == valid, metadata, f"{valid} of {cited} cited transaction ids belong to their anomaly"
    )


def _matches(answer: Any, expected: Any, answer_type: str) -> bool:
    if answer is None or expected is None:
        return False
    if answer_type == "number":
        try:
            a, e = float(answer), float(expected)
        except (TypeError, ValueError):
            return False
        return math.isclose(a, e, rel_tol=0.005, abs_tol=0.01)
    return str(answer).strip().lower() == str(expected).strip().lower()


def question_accuracy(session: ReaderSession, outcome: TaskOutcome) -> Evaluation:
    """Answers vs each question's expected_sql (run as the reader); questions without one are unscored."""
    references = {
        qid: (sql_text, kind)
        for qid, sql_text, kind in session.bulk(
            "select question_id, expected_sql, answer_type from agents.questions"
            " where expected_sql is not null"
        )
    }
    answers = outcome.answers()
    rows, unscored, correct = [], [], 0
    for run_input in outcome.inputs:
        if run_input.key not in references:
            continue
        sql_text, kind = references[run_input.key]
        answer = answers.get(run_input.key, {}).get("answer")
        try:
            result = session.query(sql_text, cap=1)
        except ToolError as exc:  # e.g. its tables are not built here: not scored, but shown
            unscored.append(f"| {run_input.key} | {answer} | reference unavailable: {exc} | - |")
            continue
        expected = result.rows[0][0] if result.rows else None
        ok = _matches(answer, expected, kind)
        correct += ok
        rows.append(f"| {run_input.key} | {answer} | {expected} | {'yes' if ok else 'no'} |")
    scored = len(rows)
    accuracy = correct / scored if scored else 1.0
    table = "| question | answer | expected | correct |\n| --- | --- | --- | --- |\n" + "\n".join(
        rows + unscored
    )
    metadata = {
        "questions": len(outcome.inputs),
        "scored": scored,
        "correct": correct,
        "question_accuracy": round(accuracy, 4),
        "answers_vs_expected": table,
    }
    ask = ask_evaluation(session)
    metadata.update(ask)
    summary = f"{correct} of {scored} questions answered as the direct SQL answers them"
    if "ask_accuracy" in ask:
        summary += (
            f"; Ask assay on its {ask['ask_questions']}-question evaluation set:"
            f" {ask['ask_accuracy']:.1%} correct, {ask['ask_wrong_rate']:.1%} wrong,"
            f" {ask['ask_abstention_rate']:.1%} abstained"
        )
    for prefix, name in (
        ("ask_heldout_", "held-out set"),
        ("ask_heldout2_", "held-out set 2"),
        ("ask_heldout3_", "held-out set 3"),
        ("ask_heldout4_", "held-out set 4"),
        ("ask_heldout5_", "held-out set 5"),
        ("ask_heldout6_", "held-out set 6"),
        ("ask_heldout7_", "held-out set 7"),
    ):
        if f"{prefix}accuracy" in ask:
            summary += (
                f"; on its {ask[f'{prefix}questions']}-question {name}:"
                f" {ask[f'{prefix}accuracy']:.1%} correct, {ask[f'{prefix}wrong_rate']:.1%} wrong,"
                f" {ask[f'{prefix}abstention_rate']:.1%} abstained"
            )
    return Evaluation(accuracy >= 0.5 and ask.get("ask_wrong_rate", 0) < 0.05, metadata, summary)


def ask_evaluation(session: ReaderSession) -> dict[str, Any]:
    """Ask assay's accuracy, wrong-answer and abstention rates on the evaluation set
    (agents/ask_eval.py) and on the held-out sets (agents/ask_heldout.py, `ask_heldout_*`;
    agents/ask_heldout2.py, `ask_heldout2_*`; agents/ask_heldout3.py, `ask_heldout3_*`;
    agents/ask_heldout4.py, `ask_heldout4_*`; agents/ask_heldout5.py, `ask_heldout5_*`;
    agents/ask_heldout6.py, `ask_heldout6_*`; agents/ask_heldout7.py, `ask_heldout7_*`), references
    from the landing files; empty without the sample's ground truth."""
    from assay.agents.ask import Asker
    from assay.agents.ask_eval import WRITTEN_ON, evaluate
    from assay.core.settings import get_settings

    settings = get_settings()
    if not (settings.truth_dir / "lines.csv").exists():
        return {"ask_evaluation": f"no ground truth at {settings.truth_dir}: not measured"}
    metadata: dict[str, Any] = {}
    try:
        asker = Asker(session)
        # the original set (its later fixes were tuned on it) and the held-out sets 1 to 7
        for name, prefix in (
            ("original", "ask_"),
            ("heldout", "ask_heldout_"),
            ("heldout2", "ask_heldout2_"),
            ("heldout3", "ask_heldout3_"),
            ("heldout4", "ask_heldout4_"),
            ("heldout5", "ask_heldout5_"),
            ("heldout6", "ask_heldout6_"),
            ("heldout7", "ask_heldout7_"),
        ):
            asker.today = WRITTEN_ON[name]  # each set asked on the day it was written
            report = evaluate(
                lambda q: asker.ask(q).as_dict(), settings.landing_dir, settings.truth_dir, name
            )
            table = "| question | expected | stated | grade |\n| --- | --- | --- | --- |\n" + "\n".join(
                f"| {r['question']} | {r['expected']} | {r['stated']} | {r['grade']} |"
                for r in report.results
            )
            metadata |= {f"{prefix}{k}": v for k, v in report.summary().items()} | {f"{prefix}results": table}
    except ToolError as exc:  # e.g. gold is not built here
        return {"ask_evaluation": f"not measured: {exc}"}
    return metadata


def explanation_faithfulness(outcome: TaskOutcome) -> Evaluation:
    """Every number and date an explanation states is in its facts or its cited rows: 100 % or fail."""
    from assay.agents.tasks.anomaly_text import faithfulness

    answers = outcome.answers()
    checked, failures = faithfulness(
        (
            run_input.key,
            answers[run_input.key].get("explanation", ""),
            run_input.data["facts"],
            [
                row
                for row in run_input.data["transactions"]
                if row["id"] in answers[run_input.key].get("cited_transaction_ids", [])
            ],
        )
        for run_input in outcome.inputs
        if run_input.key in answers
    )
    metadata = {
        "explanations_checked": checked,
        "unfaithful_explanations": len(failures),
        "unfaithful_examples": "; ".join(failures[:5]) or "none",
    }
    return Evaluation(
        not failures,
        metadata,
        f"{checked - len(failures)} of {checked} explanations state only numbers and dates from their "
        "facts or cited rows",
    )
