"""Petri nets with pm4py: the reference model, discovery, token replay and alignment moves, per
variant (the bounded alignment loop itself is `assay.mining.alignments`).

pm4py (AGPL-3.0) is used only where a model is involved. Everything here works on variants (one
trace per distinct activity sequence, with its case count): replay and alignments of a trace
depend only on its sequence, so the result for a variant is the result for each of its cases.

Nets are renamed canonically (`p1`, `t1`, ... in breadth-first order from the initial marking,
siblings ordered by label) and written with a small PNML writer that emits elements in that
order, so the same model gives the same PNML text and arc table on every run.
"""

import hashlib
import re
import xml.etree.ElementTree as ET
from collections import Counter, deque
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import polars as pl

REFERENCE_MODEL_PATH = Path(__file__).resolve().parent / "reference_process.tree"
_PNML_TYPE = "http://www.pnml.org/version-2009/grammar/pnmlcoremodel"
# pm4py's replay and alignment loops print tqdm bars unless told not to
_QUIET = {"show_progress_bar": False}


class ModelError(ValueError):
    """The configured reference model cannot be used; the message says why and what to change."""


@dataclass
class Model:
    """An accepting Petri net (pm4py objects), with the process tree it came from if any."""

    name: str
    net: object
    initial: object
    final: object
    tree: object | None = None
    version: str | None = None
    source: str = ""

    @property
    def tree_text(self) -> str | None:
        return str(self.tree) if self.tree is not None else None


def load_reference_model(path: Path | str | None = None) -> Model:
    """The intended process, from a process-tree text file (`.tree`) or a PNML file.

    A `.tree` file holds one process tree in pm4py's notation; lines starting with `#` are
    comments, and a `# version: X` comment names the model's version.
    """
    import pm4py

    path = Path(path) if path else REFERENCE_MODEL_PATH
    if not path.is_file():
        raise ModelError(
            f"reference model not found: {str(path)!r} (resolved from {Path.cwd()}); set "
            "`reference_model` of `process_mining` to a .tree or .pnml file, or leave it unset for "
            "the shipped approval process"
        )
    if path.suffix not in (".pnml", ".tree"):
        raise ModelError(
            f"reference model {str(path)!r}: unknown kind {path.suffix!r}; use a process tree in "
            "pm4py's notation (.tree) or a Petri net (.pnml)"
        )
    text = path.read_text(encoding="utf-8")
    digest = hashlib.sha256(text.encode()).hexdigest()[:12]
    if path.suffix == ".pnml":
        net, initial, final = pm4py.read_pnml(str(path))
        version = f"sha256:{digest}"
        return Model("reference", *canonical_net(net, initial, final), version=version, source=str(path))
    found = re.search(r"^\s*#\s*version:\s*(\S+)", text, flags=re.MULTILINE)
    version = f"{found.group(1) if found else 'unversioned'} (sha256:{digest})"
    body = " ".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    tree = pm4py.parse_process_tree(body.strip())
    net, initial, final = pm4py.convert_to_petri_net(tree)
    return Model(
        "reference", *canonical_net(net, initial, final), tree=tree, version=version, source=path.name
    )


def model_activities(model: Model) -> set[str]:
    return {t.label for t in model.net.transitions if t.label is not None}


def check_model_activities(model: Model, log_activities: set[str]) -> list[str]:
    """The model's activities that the log never has (sorted). Raises `ModelError` when none of
    the model's activities is in a non-empty log: the model is of another process, or the labels
    are spelled differently, and every case would deviate."""
    labels = model_activities(model)
    absent = sorted(labels - log_activities)
    if log_activities and labels and len(absent) == len(labels):
        near = sorted(a for a in log_activities if a.casefold() in {x.casefold() for x in labels})
        hint = f" (they differ only in case from the log's {near})" if near else ""
        raise ModelError(
            f"none of the reference model's activities {absent} occurs in the event log{hint}; the "
            f"log's activities are {sorted(log_activities)[:20]}. Set `reference_model` of "
            "`process_mining` to a model of this log's process whose transition labels equal the "
            "log's activity names, or check `activity_column` of `process_event_log`"
        )
    return absent


def discover_model(variants: dict[tuple[str, ...], int], noise_threshold: float = 0.0) -> Model:
    """Inductive miner on the variant counts (the same result as on the full log, far less work).

    `noise_threshold` 0 runs the plain inductive miner (every variant fits the model); above 0 the
    infrequent-behaviour variant IMf filters rare directly-follows relations.
    """
    import pm4py
    from pm4py.algo.discovery.inductive.dtypes.im_ds import IMDataStructureUVCL
    from pm4py.algo.discovery.inductive.variants.im import IMUVCL
    from pm4py.algo.discovery.inductive.variants.imf import IMFUVCL
    from pm4py.objects.process_tree.utils.generic import fold, tree_sort

    # What pm4py's inductive.apply does after compressing a log into variant counts (its own
    # check for an already-compressed log compares against typing.Counter and never matches).
    log = Counter(variants)
    if noise_threshold > 0:
        parameters = {"noise_threshold": noise_threshold}
        tree = IMFUVCL(parameters).apply(IMDataStructureUVCL(log), parameters)
        algorithm = f"inductive miner infrequent (IMf), noise threshold {noise_threshold}"
    else:
        tree = IMUVCL({}).apply(IMDataStructureUVCL(log), {})
        algorithm = "inductive miner (IM)"
    tree = fold(tree)
    tree_sort(tree)
    net, initial, final = pm4py.convert_to_petri_net(tree)
    return Model("discovered", *canonical_net(net, initial, final), tree=tree, source=algorithm)


def canonical_net(net, initial, final):
    """A copy of the net with ids p1.., t1.. in breadth-first order; markings carried over."""
    from pm4py.objects.petri_net.obj import Marking, PetriNet
    from pm4py.objects.petri_net.utils import petri_utils

    def key(node) -> tuple:
        # silent transitions sort after visible ones, then by what they lead to
        label = getattr(node, "label", None)
        after = sorted(str(getattr(a.target, "label", "") or "") for a in node.out_arcs)
        return (label is None, label or "", after, node.name)

    order: list = []
    seen: set = set()
    queue = deque(sorted(initial, key=key))
    seen.update(queue)
    while queue:
        node = queue.popleft()
        order.append(node)
        for nxt in sorted((a.target for a in node.out_arcs), key=key):
            if nxt not in seen:
                seen.add(nxt)
                queue.append(nxt)
    rest = sorted((n for n in [*net.places, *net.transitions] if n not in seen), key=key)
    order += rest  # unreachable nodes keep a place in the copy
    copy = PetriNet(net.name or "net")
    mapping = {}
    counts = Counter()
    for node in order:
        if isinstance(node, PetriNet.Place):
            counts["p"] += 1
            mapping[node] = PetriNet.Place(f"p{counts['p']}")
            copy.places.add(mapping[node])
        else:
            counts["t"] += 1
            mapping[node] = PetriNet.Transition(f"t{counts['t']}", node.label)
            copy.transitions.add(mapping[node])
    position = {node: i for i, node in enumerate(order)}
    for node in order:
        for arc in sorted(node.out_arcs, key=lambda a: position[a.target]):
            petri_utils.add_arc_from_to(mapping[arc.source], mapping[arc.target], copy, weight=arc.weight)
    return (
        copy,
        Marking({mapping[p]: n for p, n in initial.items()}),
        Marking({mapping[p]: n for p, n in final.items()}),
    )


def _node_number(node) -> tuple[int, int]:
    return (0 if node.name.startswith("p") else 1, int(node.name[1:]))


def ordered_nodes(model: Model) -> tuple[list, list]:
    places = sorted(model.net.places, key=_node_number)
    transitions = sorted(model.net.transitions, key=_node_number)
    return places, transitions


def ordered_arcs(model: Model) -> list:
    return sorted(model.net.arcs, key=lambda a: (_node_number(a.source), _node_number(a.target)))


def to_pnml(model: Model) -> str:
    """PNML 2009 core model text (readable by pm4py and ProM), elements in canonical order."""
    places, transitions = ordered_nodes(model)
    root = ET.Element("pnml")
    net = ET.SubElement(root, "net", id=model.name, type=_PNML_TYPE)
    ET.SubElement(ET.SubElement(net, "name"), "text").text = model.name
    page = ET.SubElement(net, "page", id="n0")
    for place in places:
        node = ET.SubElement(page, "place", id=place.name)
        ET.SubElement(ET.SubElement(node, "name"), "text").text = place.name
        if place in model.initial:
            ET.SubElement(ET.SubElement(node, "initialMarking"), "text").text = str(model.initial[place])
    for transition in transitions:
        node = ET.SubElement(page, "transition", id=transition.name)
        ET.SubElement(ET.SubElement(node, "name"), "text").text = transition.label or transition.name
        if transition.label is None:
            ET.SubElement(
                node,
                "toolspecific",
                tool="ProM",
                version="6.4",
                activity="$invisible$",
                localNodeID=transition.name,
            )
    for number, arc in enumerate(ordered_arcs(model), start=1):
        node = ET.SubElement(page, "arc", id=f"a{number}", source=arc.source.name, target=arc.target.name)
        if arc.weight != 1:
            ET.SubElement(ET.SubElement(node, "inscription"), "text").text = str(arc.weight)
    marking = ET.SubElement(ET.SubElement(net, "finalmarkings"), "marking")
    for place in sorted(model.final, key=_node_number):
        ET.SubElement(ET.SubElement(marking, "place", idref=place.name), "text").text = str(
            model.final[place]
        )
    ET.indent(root)
    return ET.tostring(root, encoding="unicode", xml_declaration=True) + "\n"


def arc_rows(model: Model) -> pl.DataFrame:
    """One row per arc: endpoints with their kind and label (null for places and silent steps)."""

    def describe(node) -> tuple[str, str | None]:
        return ("place", None) if node.name.startswith("p") else ("transition", node.label)

    rows = []
    for number, arc in enumerate(ordered_arcs(model), start=1):
        source_kind, source_label = describe(arc.source)
        target_kind, target_label = describe(arc.target)
        rows.append(
            {
                "model": model.name,
                "arc_id": f"a{number}",
                "source_id": arc.source.name,
                "source_kind": source_kind,
                "source_label": source_label,
                "target_id": arc.target.name,
                "target_kind": target_kind,
                "target_label": target_label,
                "weight": arc.weight,
            }
        )
    return pl.DataFrame(rows, schema=ARC_SCHEMA)


ARC_SCHEMA = {
    "model": pl.String,
    "arc_id": pl.String,
    "source_id": pl.String,
    "source_kind": pl.String,
    "source_label": pl.String,
    "target_id": pl.String,
    "target_kind": pl.String,
    "target_label": pl.String,
    "weight": pl.Int32,
}


def event_log(traces: Sequence[Sequence[str]]):
    from pm4py.objects.log.obj import Event, EventLog, Trace

    return EventLog([Trace([Event({"concept:name": a}) for a in trace]) for trace in traces])


REPLAY_SCHEMA = {
    "is_fit": pl.Boolean,
    "trace_fitness": pl.Float64,
    "missing_tokens": pl.Int64,
    "consumed_tokens": pl.Int64,
    "remaining_tokens": pl.Int64,
    "produced_tokens": pl.Int64,
}


def replay(model: Model, traces: Sequence[Sequence[str]]) -> pl.DataFrame:
    """Token-based replay of each trace, in input order (one row per trace)."""
    from pm4py.algo.conformance.tokenreplay import algorithm as token_replay

    if not traces:
        return pl.DataFrame(schema=REPLAY_SCHEMA)
    results = token_replay.apply(event_log(traces), model.net, model.initial, model.final, parameters=_QUIET)
    return pl.DataFrame(
        [
            {
                "is_fit": bool(r["trace_is_fit"]),
                "trace_fitness": float(r["trace_fitness"]),
                "missing_tokens": r["missing_tokens"],
                "consumed_tokens": r["consumed_tokens"],
                "remaining_tokens": r["remaining_tokens"],
                "produced_tokens": r["produced_tokens"],
            }
            for r in results
        ],
        schema=REPLAY_SCHEMA,
    )


def log_fitness(replayed: pl.DataFrame, weights: pl.Series) -> float:
    """pm4py's log-level token-replay fitness with each trace weighted by its case count.

    1/2 (1 - missing/consumed) + 1/2 (1 - remaining/produced), token counts summed over all cases.
    """
    if replayed.is_empty():
        return 1.0
    totals = replayed.select(
        (pl.col(c) * weights).sum().alias(c)
        for c in ("missing_tokens", "consumed_tokens", "remaining_tokens", "produced_tokens")
    ).row(0, named=True)
    missing = totals["missing_tokens"] / totals["consumed_tokens"] if totals["consumed_tokens"] else 0.0
    remaining = totals["remaining_tokens"] / totals["produced_tokens"] if totals["produced_tokens"] else 0.0
    return 0.5 * (1 - missing) + 0.5 * (1 - remaining)


@dataclass
class Alignment:
    fitness: float
    moves: list[tuple[str, str, int]]
    """Deviating moves in order as (kind, activity, trace position): kind `log` = in the log but not
    allowed by the model, `model` = required by the model but missing from the log; the position is
    the number of the trace's events before the move (0-based index of a log move's event)."""


def alignment_moves(alignment) -> list[tuple[str, str, int]]:
    """The deviating moves of one pm4py alignment (a list of (log label, model label) pairs)."""
    moves, position = [], 0
    for log_label, model_label in alignment:
        if model_label == ">>":
            moves.append(("log", log_label, position))
        elif log_label == ">>" and model_label is not None:
            moves.append(("model", model_label, position))
        if log_label != ">>":
            position += 1
    return moves
