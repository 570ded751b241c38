"""Process map pictures (frequency view, performance view) drawn with matplotlib and networkx.

No graphviz: the layout is a small layered (Sugiyama-style) layout computed here. Loops are
broken by a depth-first search from the start that follows the most frequent edges first; each
activity's column is its longest path from the start over the remaining edges; rows inside a
column are ordered by the mean row of their predecessors. Back edges (loops) are drawn as arcs.
"""

import io
import math

import networkx as nx
import polars as pl
from matplotlib import colormaps
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.colors import LogNorm, Normalize
from matplotlib.figure import Figure
from matplotlib.patches import FancyArrowPatch

START, END = "▶ start", "■ end"
MAX_ACTIVITIES = 30  # larger logs keep their most frequent activities, the rest is left out
_X_GAP, _Y_GAP = 3.2, 1.6


def format_hours(hours: float | None) -> str:
    if hours is None or math.isnan(hours):
        return ""
    if hours < 1:
        return f"{hours * 60:.0f} min"
    if hours < 48:
        return f"{hours:.1f} h"
    return f"{hours / 24:.1f} d"


def _graph(dfg: pl.DataFrame, activity_counts: dict[str, int]) -> nx.DiGraph:
    keep = set(sorted(activity_counts, key=lambda a: (-activity_counts[a], a))[:MAX_ACTIVITIES])
    graph = nx.DiGraph()
    graph.add_node(START, count=None)
    for activity in sorted(keep):
        graph.add_node(activity, count=activity_counts[activity])
    graph.add_node(END, count=None)
    for row in dfg.iter_rows(named=True):
        source = START if row["edge_kind"] == "start" else row["source"]
        target = END if row["edge_kind"] == "end" else row["target"]
        if source in graph and target in graph:
            graph.add_edge(source, target, frequency=row["frequency"], median=row["median_hours"])
    return graph


def layout(graph: nx.DiGraph) -> tuple[dict[str, tuple[float, float]], set[tuple[str, str]]]:
    """Node positions (x grows with the process) and the set of back edges."""
    back: set[tuple[str, str]] = set()
    state: dict[str, int] = {}  # 1 on the stack, 2 done

    def successors(node: str) -> list[str]:
        return sorted(graph.successors(node), key=lambda n: (-graph.edges[node, n]["frequency"], n))

    def visit(root: str) -> None:  # iterative DFS: logs can have long chains
        stack = [(root, iter(successors(root)))]
        state[root] = 1
        while stack:
            node, children = stack[-1]
            child = next(children, None)
            if child is None:
                state[node] = 2
                stack.pop()
            elif state.get(child) == 1:
                back.add((node, child))
            elif child not in state:
                state[child] = 1
                stack.append((child, iter(successors(child))))

    visit(START)
    for node in sorted(graph, key=lambda n: -(graph.nodes[n]["count"] or 0)):
        if node not in state:
            visit(node)
    dag = nx.DiGraph([e for e in graph.edges if e not in back])
    dag.add_nodes_from(graph)
    column = {}
    for node in nx.topological_sort(dag):
        preds = [column[p] + 1 for p in dag.predecessors(node)]
        column[node] = max(preds, default=0)
    column[END] = max(column[n] for n in graph if n != END) + 1 if len(graph) > 1 else 1
    columns: dict[int, list[str]] = {}
    for node in sorted(graph, key=lambda n: (-(graph.nodes[n]["count"] or 0), n)):
        columns.setdefault(column[node], []).append(node)
    row: dict[str, float] = {}
    for c in sorted(columns):
        members = columns[c]
        for i, node in enumerate(members):
            row[node] = i - (len(members) - 1) / 2
    for _ in range(2):  # barycentre ordering, two sweeps
        for c in sorted(columns)[1:]:

            def centre(node: str) -> float:
                preds = [row[p] for p in dag.predecessors(node)]
                return sum(preds) / len(preds) if preds else row[node]

            members = sorted(columns[c], key=lambda n: (centre(n), n))
            for i, node in enumerate(members):
                row[node] = i - (len(members) - 1) / 2
    return {n: (column[n] * _X_GAP, -row[n] * _Y_GAP) for n in graph}, back


def _bezier(ax, start, end, rad: float, t: float) -> tuple[float, float]:
    """A point of matplotlib's `arc3` curve (a quadratic Bezier built in display space)."""
    (x1, y1), (x2, y2) = ax.transData.transform(start), ax.transData.transform(end)
    cx, cy = (x1 + x2) / 2 + rad * (y2 - y1), (y1 + y2) / 2 - rad * (x2 - x1)
    u = 1 - t
    return (u * u * x1 + 2 * u * t * cx + t * t * x2, u * u * y1 + 2 * u * t * cy + t * t * y2)


def _clear_rad(ax, start, end, candidates: tuple[float, ...], boxes: list) -> float:
    """The first curvature whose curve passes through none of the other nodes' boxes."""
    best, fewest = candidates[0], math.inf
    for rad in candidates:
        points = [_bezier(ax, start, end, rad, i / 24) for i in range(2, 23)]
        hits = sum(box.contains(x, y) for box in boxes for x, y in points)
        if hits == 0:
            return rad
        if hits < fewest:
            best, fewest = rad, hits
    return best


def render(
    dfg: pl.DataFrame,
    activity_counts: dict[str, int],
    view: str,
    title: str,
    activity_waits: dict[str, float],
) -> bytes:
    """A PNG of the process map; `view` is `frequency` (counts) or `performance` (median times)."""
    graph = _graph(dfg, activity_counts)
    pos, back = layout(graph)
    xs = [p[0] for p in pos.values()]
    ys = [p[1] for p in pos.values()]
    width = max(xs) - min(xs) + _X_GAP
    height = max(ys) - min(ys) + 2 * _Y_GAP
    fig = Figure(figsize=(min(22, 1.6 + width * 0.95), min(14, 1.4 + height * 0.95)), dpi=90)
    FigureCanvasAgg(fig)
    ax = fig.add_axes((0.01, 0.01, 0.98, 0.92))
    ax.set_axis_off()
    ax.set_xlim(min(xs) - _X_GAP / 2, max(xs) + _X_GAP / 2)
    ax.set_ylim(min(ys) - _Y_GAP, max(ys) + _Y_GAP)
    fig.suptitle(title, fontsize=12)

    flows = [d["frequency"] for s, t, d in graph.edges(data=True) if START not in (s,) and t != END]
    top = max(flows, default=1)
    medians = [d["median"] for _, _, d in graph.edges(data=True) if d["median"] is not None]
    time_norm = LogNorm(vmin=max(min(medians, default=0.01), 0.01), vmax=max(max(medians, default=1.0), 0.02))
    node_counts = [c for _, c in graph.nodes(data="count") if c]
    count_norm = Normalize(vmin=0, vmax=max(node_counts, default=1) * 1.15)
    # nodes first: their boxes are the patches the arrows are clipped to
    boxes = {}
    for node, count in graph.nodes(data="count"):
        color, text = "black", node
        if count is None:  # the start and end markers
            bbox = {"boxstyle": "circle,pad=0.35", "fc": "#eeeeee", "ec": "#777777"}
        else:
            if view == "frequency":
                fill = colormaps["Blues"](0.15 + 0.7 * count_norm(count))
                text = f"{node}\n{count:,}"
                color = "white" if count_norm(count) > 0.6 else "black"
            else:
                wait = activity_waits.get(node)
                fill = "#fff7e6"
                text = f"{node}\nwait {format_hours(wait)}" if wait is not None else node
            bbox = {"boxstyle": "round,pad=0.45", "fc": fill, "ec": "#44546a", "lw": 1.0}
        x, y = pos[node]
        boxes[node] = ax.text(
            x, y, text, ha="center", va="center", fontsize=9, zorder=4, color=color, bbox=bbox
        )
    fig.canvas.draw()  # sizes the boxes
    extents = {n: t.get_bbox_patch().get_window_extent().padded(4) for n, t in boxes.items()}
    for source, target, data in graph.edges(data=True):
        boundary = source == START or target == END
        if view == "frequency":
            colour = "#9e9e9e" if boundary else "#3b6ea8"
            lw = 0.8 + 4.5 * data["frequency"] / top if not boundary else 1.0
            label = f"{data['frequency']:,}"
        else:
            colour = "#9e9e9e" if boundary else colormaps["YlOrRd"](0.25 + 0.75 * time_norm(data["median"]))
            lw = 1.0 if boundary else 2.2
            label = "" if boundary else format_hours(data["median"])
        (x1, y1), (x2, y2) = pos[source], pos[target]
        style = {
            "arrowstyle": "-|>",
            "mutation_scale": 13,
            "lw": lw,
            "color": colour,
            "zorder": 1,
            "linestyle": "--" if boundary else "-",
        }
        if source == target:  # a self-loop: a small arc over the box
            top_y = boxes[source].get_bbox_patch().get_window_extent()
            _, box_top = ax.transData.inverted().transform((0, top_y.y1))
            ax.add_patch(
                FancyArrowPatch(
                    (x1 - 0.3, box_top), (x1 + 0.3, box_top), connectionstyle="arc3,rad=-1.4", **style
                )
            )
            mx, my = x1, box_top + 0.45
        else:
            if (source, target) in back:
                candidates = (0.45, -0.45, 0.6, -0.6, 0.3, -0.3)
            elif graph.has_edge(target, source):
                candidates = (0.18, 0.3, 0.45)  # a pair: both bend right of their direction
            else:
                candidates = (0.06, -0.15, 0.15, -0.3, 0.3, -0.45, 0.45)
            others = [b for n, b in extents.items() if n not in (source, target)]
            rad = _clear_rad(ax, (x1, y1), (x2, y2), candidates, others)
            ax.add_patch(
                FancyArrowPatch(
                    (x1, y1),
                    (x2, y2),
                    connectionstyle=f"arc3,rad={rad}",
                    patchA=boxes[source].get_bbox_patch(),
                    patchB=boxes[target].get_bbox_patch(),
                    shrinkA=2,
                    shrinkB=2,
                    **style,
                )
            )
            mx, my = ax.transData.inverted().transform(_bezier(ax, (x1, y1), (x2, y2), rad, 0.5))
        if label:
            ax.text(
                mx,
                my,
                label,
                fontsize=7.5,
                ha="center",
                va="center",
                zorder=3,
                bbox={"boxstyle": "round,pad=0.15", "fc": "white", "ec": "none", "alpha": 0.85},
            )
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png")
    return buffer.getvalue()
