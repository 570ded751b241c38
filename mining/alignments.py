"""Bounded alignments: one variant at a time, most frequent first, within a time budget.

Optimal alignments are exponential in the worst case, and real logs have thousands of variants, so
each variant gets at most `variant_timeout_s` (pm4py's `max_align_time_trace`) and all of them
together at most `budget_s`; a variant's timeout never exceeds what is left of the budget, so the
whole step ends within the budget plus one check of pm4py's search loop. Variants that ran out of
time, or were not reached, are reported with the reason. Each call aligns one variant with pm4py's
`alignments.apply_trace` (A* on the state equation, pm4py's default) and the net's best worst cost
computed once, so the fitness of an aligned variant is exactly the one pm4py's `apply` gives.
"""

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from assay.core.progress import prefix
from assay.mining.models import Alignment, Model, alignment_moves, event_log

PROGRESS_PREFIX = prefix("alignments")  # `assay run` shows the step log's lines that start with it
NOT_REACHED = "not aligned: time budget of {budget:g} s spent before this variant"
TIMED_OUT = "not aligned: alignment took longer than the per-variant timeout of {timeout:g} s"


@dataclass
class BoundedAlignments:
    alignments: list[Alignment | None]
    """One per input trace, in input order; None where the variant was not aligned."""
    reasons: list[str | None]
    """Why a variant was not aligned (None where it was)."""
    seconds: float
    coverage: float
    """Share of the weight (cases) whose variant was aligned; 1.0 when nothing had to be aligned."""


def align_bounded(
    model: Model,
    traces: Sequence[Sequence[str]],
    weights: Sequence[int],
    variant_timeout_s: float,
    budget_s: float,
    progress: Callable[[str], None] | None = None,
    progress_every_s: float = 10.0,
) -> BoundedAlignments:
    """Align `traces` (variants, ordered most frequent first) in order until the budget is spent."""
    from pm4py.algo.conformance.alignments.petri_net import algorithm as alignments
    from pm4py.algo.conformance.alignments.petri_net.variants import state_equation_a_star

    started = time.monotonic()
    total = len(traces)
    out: list[Alignment | None] = [None] * total
    reasons: list[str | None] = [NOT_REACHED.format(budget=budget_s)] * total
    if not total:
        return BoundedAlignments([], [], 0.0, 1.0)
    quiet = {"show_progress_bar": False}
    # (pm4py writes its trace costs into the parameters it is given: a copy)
    best_worst = state_equation_a_star.get_best_worst_cost(model.net, model.initial, model.final, dict(quiet))
    last_report = started
    done = 0
    for index, pm_trace in enumerate(event_log(traces)):
        left = budget_s - (time.monotonic() - started)
        if left <= 0:
            break
        parameters = {
            **quiet,
            alignments.Parameters.PARAM_MAX_ALIGN_TIME_TRACE: min(variant_timeout_s, left),
            alignments.Parameters.BEST_WORST_COST_INTERNAL: best_worst,
        }
        result = alignments.apply_trace(pm_trace, model.net, model.initial, model.final, parameters)
        done = index + 1
        if result is None:
            reasons[index] = (
                TIMED_OUT.format(timeout=variant_timeout_s)
                if variant_timeout_s <= left
                else NOT_REACHED.format(budget=budget_s)
            )
        else:
            out[index] = Alignment(float(result["fitness"]), alignment_moves(result["alignment"]))
            reasons[index] = None
        now = time.monotonic()
        if progress and (now - last_report >= progress_every_s or done == total):
            elapsed = now - started
            eta = elapsed / done * (total - done)
            progress(
                f"{PROGRESS_PREFIX}{done}/{total} variants tried in {elapsed:.0f}s, "
                f"ETA {min(eta, max(budget_s - elapsed, 0)):.0f}s (budget {budget_s:g}s)"
            )
            last_report = now
    seconds = time.monotonic() - started
    weight_total = sum(weights)
    aligned = sum(w for w, a in zip(weights, out, strict=True) if a is not None)
    coverage = aligned / weight_total if weight_total else 1.0
    if progress and done < total:
        progress(f"{PROGRESS_PREFIX}budget of {budget_s:g}s spent after {done}/{total} variants")
    return BoundedAlignments(out, reasons, seconds, coverage)
