"""A real browser check of the Dagster UI: `assay ui` on a built pipeline, read in headless Chromium.

It starts `assay ui` on a free port, opens the global asset graph with the layer groups expanded,
reads the rendered page (the graph's SVG nodes, not the GraphQL answers) and checks that the groups
bronze, silver, gold and platinum are drawn, in that order from top to bottom, each holding every
asset the definitions put in it. It can save a screenshot of the graph (docs/ui-asset-graph.png).

    python tests/ui_check.py [--home ASSAY_HOME] [--screenshot docs/ui-asset-graph.png]

Without --home it builds a fresh home first (`assay run --size small`, about 2 minutes). `make
ui-check` installs Debian's chromium if it is missing and runs this; `tests/test_ui.py` runs the same
check in pytest. Chromium is driven by Playwright's Python package with Debian's /usr/bin/chromium
(`playwright install` downloads a browser of its own, which these machines cannot).

The UI runs on the home's database and a copy of its Dagster instance, in which no run starts
(see `running_ui`): the check reads the pipeline as built and changes nothing.
"""

import argparse
import contextlib
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import quote

import httpx

REPO = Path(__file__).resolve().parent.parent
if str(REPO) not in sys.path:  # run as a script: the repository's own packages first
    sys.path.insert(0, str(REPO))

CHROMIUM = Path("/usr/bin/chromium")
# No network here but loopback: without these Chromium keeps calling home and fails noisily.
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
LAYERS = ("bronze", "silver", "gold", "platinum")
START_TIMEOUT_S = 240  # webserver + code location (imports dbt, torch, pm4py) on 2 busy cores
VIEWPORT = {"width": 2600, "height": 1400}
NO_RUNS = """
# added by tests/ui_check.py: queue runs, start none
run_coordinator:
  module: dagster.core.run_coordinator
  class: QueuedRunCoordinator
  config:
    max_concurrent_runs: 0
"""


def expected_assets() -> dict[str, set[str]]:
    """Asset names per layer group, from the definitions the UI loads."""
    from assay.orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    groups: dict[str, set[str]] = {layer: set() for layer in LAYERS}
    for key in graph.get_all_asset_keys():
        group = graph.get(key).group_name
        if group in groups:
            groups[group].add(key.path[-1])
    return groups


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def running_ui(home: Path, log_path: Path) -> Iterator[str]:
    """`assay ui` on `home`'s database and a copy of its Dagster instance; yields the URL once it answers.

    The UI gets a home of its own holding that copy and no landing files, and reaches the database
    through ASSAY_DATABASE_URL: its daemon would otherwise start runs (the landing sensor's first
    tick asks for every source with files) that rebuild the pipeline while the check reads the page.
    The copy's run queue starts nothing either, in case anything else asks for a run.
    """
    from assay.core.database import PostgresResource

    database_url = PostgresResource(home=str(home)).url()  # this process keeps an embedded server up
    view = Path(tempfile.mkdtemp(prefix="assay-ui-check-"))
    if (home / "dagster").is_dir():
        shutil.copytree(home / "dagster", view / "dagster")
    config = view / "dagster" / "dagster.yaml"
    config.parent.mkdir(exist_ok=True)
    text = config.read_text() if config.exists() else ""
    if "run_coordinator:" in text:
        raise SystemExit(
            f"{home / 'dagster' / 'dagster.yaml'} sets its own run_coordinator: check a home without"
        )
    config.write_text(text + NO_RUNS)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if k != "DAGSTER_HOME"}
    env |= {"ASSAY_HOME": str(view), "ASSAY_DATABASE_URL": database_url, "HF_HUB_OFFLINE": "1"}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    command = [sys.executable, "-m", "assay.orchestration.cli", "ui", "--port", str(port)]
    with log_path.open("w") as log:
        # its own session: `dagster dev` starts a webserver, a daemon and a code server, stopped together
        ui = subprocess.Popen(
            command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
    url = f"http://127.0.0.1:{port}"
    try:
        _wait_until_answering(url, ui, log_path)
        yield url
    finally:
        _stop(ui)
        shutil.rmtree(view, ignore_errors=True)


def _stop(ui: subprocess.Popen) -> None:
    """Ctrl-C for `dagster dev` and its children; whatever still runs after a grace period is killed
    (its code servers can hang on shutdown, and nothing of this session must outlive the check)."""
    with contextlib.suppress(ProcessLookupError):
        os.killpg(ui.pid, signal.SIGINT)
    with contextlib.suppress(subprocess.TimeoutExpired):
        ui.wait(timeout=15)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(ui.pid, signal.SIGKILL)  # the whole group: the children outlive their parent
    ui.wait()


def _wait_until_answering(url: str, ui: subprocess.Popen, log_path: Path) -> None:
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if ui.poll() is not None:
            raise RuntimeError(f"`assay ui` exited with status {ui.returncode}; its log: {log_path}")
        with contextlib.suppress(httpx.HTTPError):
            if httpx.get(f"{url}/server_info", timeout=2).status_code == 200:
                return
        time.sleep(1)
    raise RuntimeError(f"`assay ui` did not answer on {url} within {START_TIMEOUT_S} s; its log: {log_path}")


def graph_url(base: str) -> str:
    """The global asset graph with the layer groups expanded (the UI keeps that state in the URL)."""
    expanded = ",".join(f"global@global:{layer}" for layer in LAYERS)
    return f"{base}/asset-groups?expanded={quote(expanded)}"


# Every node of the graph is a <foreignObject> in SVG coordinates: a group is a box with its name in
# the header, an asset a box with its (middle-truncated) name. Only nodes in view are rendered.
_READ_GRAPH = """() => Array.from(document.querySelectorAll('foreignObject')).map(f => ({
  group: f.getAttribute('class') === 'group',
  x: +f.getAttribute('x'), y: +f.getAttribute('y'),
  w: +f.getAttribute('width'), h: +f.getAttribute('height'),
  text: f.textContent.trim(),
}))"""


def shown_in_groups(nodes: list[dict]) -> dict[str, list[str]]:
    """Asset labels drawn inside each group's box, by group name."""
    shown: dict[str, list[str]] = {}
    for g in (n for n in nodes if n["group"]):
        inside = [
            n["text"]
            for n in nodes
            if not n["group"] and g["x"] <= n["x"] < g["x"] + g["w"] and g["y"] <= n["y"] < g["y"] + g["h"]
        ]
        shown[re.sub(r"\d+ assets?.*$", "", g["text"]).strip()] = [label for label in inside if label]
    return shown


def label_matches(label: str, name: str) -> bool:
    """A node label is the name, or the name with its middle cut out ('int_emplo…_checked')."""
    if "…" not in label:
        return label == name
    head, tail = label.split("…", 1)
    return name.startswith(head) and name.endswith(tail) and len(name) > len(head) + len(tail)


def missing_assets(shown: dict[str, list[str]], expected: dict[str, set[str]]) -> dict[str, set[str]]:
    return {
        layer: missing
        for layer, names in expected.items()
        if (
            missing := {
                n for n in names if not any(label_matches(label, n) for label in shown.get(layer, []))
            }
        )
    }


def check_asset_graph(base_url: str, screenshot: Path | None = None) -> dict[str, list[str]]:
    """Open the asset graph in headless Chromium, assert what it shows; returns labels per group."""
    from playwright.sync_api import sync_playwright

    expected = expected_assets()
    with sync_playwright() as p, tempfile.TemporaryDirectory(prefix="assay-chromium-") as profile:
        browser = p.chromium.launch_persistent_context(
            profile,
            executable_path=str(CHROMIUM),
            args=CHROMIUM_ARGS,
            headless=True,
            viewport=VIEWPORT,
            device_scale_factor=1.5,  # sharper names in the screenshot
        )
        try:
            page = browser.new_page()
            page.goto(graph_url(base_url), timeout=60_000)
            # the code location may still be loading: the groups appear when it is
            page.wait_for_selector("foreignObject.group", timeout=START_TIMEOUT_S * 1000)
            _dismiss_welcome(page)
            page.get_by_text("Hide navigation").click()
            # top to bottom reads bronze -> platinum, and the whole graph fits the viewport
            page.locator('button:has([aria-label="settings"])').last.click()
            page.get_by_text("Change graph to vertical orientation").click()
            page.keyboard.press("Escape")
            page.wait_for_timeout(1000)
            _fit_graph(page)
            page.wait_for_timeout(3000)  # nodes that came into view render, statuses arrive
            nodes = page.evaluate(_READ_GRAPH)
            shown = shown_in_groups(nodes)
            assert set(LAYERS) <= set(shown), f"groups drawn: {sorted(shown)}; expected {LAYERS}"
            missing = missing_assets(shown, expected)
            assert not missing, f"assets not drawn in their group: {missing}; drawn: {shown}"
            tops = [
                next(n["y"] for n in nodes if n["group"] and n["text"].startswith(layer)) for layer in LAYERS
            ]
            assert tops == sorted(tops), (
                f"layers not drawn top to bottom: {dict(zip(LAYERS, tops, strict=True))}"
            )
            if screenshot:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), clip=_graph_clip(page))
            return shown
        finally:
            browser.close()


def _dismiss_welcome(page) -> None:
    """A new instance greets its first visitor with a newsletter dialog over the page: skip it."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    with contextlib.suppress(PlaywrightTimeout):
        page.get_by_role("button", name="Skip").click(timeout=5000)


# The graph is an <svg> of the whole layout inside a div scaled and moved by the viewport's transform,
# inside the visible graph area. Screen rectangles of both say what is in view.
_GEOMETRY = """() => {
  // the layout's <svg>: the owner of a drawn node, or (no node in view, e.g. right after the
  // orientation changed) the largest svg on the page, which is the whole graph's layout
  const node = document.querySelector('foreignObject');
  const area = e => { const r = e.getBoundingClientRect(); return r.width * r.height; };
  const svg = node ? node.ownerSVGElement
    : Array.from(document.querySelectorAll('svg')).reduce((a, b) => (area(b) > area(a) ? b : a));
  const g = svg.getBoundingClientRect(), a = svg.parentElement.parentElement.getBoundingClientRect();
  return {gx: g.x, gy: g.y, gw: g.width, gh: g.height, ax: a.x, ay: a.y, aw: a.width, ah: a.height}; }"""


def _geometry(page) -> dict:
    # the graph draws only the nodes in view: after a change of orientation none may be, so the
    # layout's svg is measured without waiting for a node (see _GEOMETRY)
    return page.evaluate(_GEOMETRY)


def _fit_graph(page, margin: int = 40) -> None:
    """Zoom out until the whole graph fits its area, then drag it to the area's centre: the graph
    draws only the nodes in view, so everything must be in view to be read (and photographed)."""
    zoom_out = page.locator('button:has([aria-label="zoom_out"])')
    for _ in range(10):
        geo = _geometry(page)
        if geo["gw"] <= geo["aw"] - 2 * margin and geo["gh"] <= geo["ah"] - 2 * margin:
            break
        zoom_out.click()
        page.wait_for_timeout(300)
    geo = _geometry(page)
    dx = geo["ax"] + (geo["aw"] - geo["gw"]) / 2 - geo["gx"]
    dy = geo["ay"] + (geo["ah"] - geo["gh"]) / 2 - geo["gy"]
    start_x, start_y = geo["ax"] + 10, geo["ay"] + geo["ah"] - 10  # a corner with no node
    page.mouse.move(start_x, start_y)
    page.mouse.down()
    page.mouse.move(start_x + dx, start_y + dy, steps=20)
    page.mouse.up()


def _graph_clip(page) -> dict:
    """The part of the page the graph's nodes cover, with a margin."""
    box = page.evaluate(
        """() => {
        const r = Array.from(document.querySelectorAll('foreignObject')).map(f => f.getBoundingClientRect());
        return {x: Math.min(...r.map(b => b.left)), y: Math.min(...r.map(b => b.top)),
                r: Math.max(...r.map(b => b.right)), b: Math.max(...r.map(b => b.bottom))}; }"""
    )
    x, y = max(box["x"] - 24, 0), max(box["y"] - 24, 0)
    return {
        "x": x,
        "y": y,
        "width": min(box["r"] + 24, VIEWPORT["width"]) - x,
        "height": min(box["b"] + 24, VIEWPORT["height"]) - y,
    }


def build_home() -> Path:
    home = Path(tempfile.mkdtemp(prefix="assay-ui-"))
    env = {**os.environ, "ASSAY_HOME": str(home), "HF_HUB_OFFLINE": "1"}
    print(f"building a small pipeline in {home} (assay run --size small) ...", flush=True)
    subprocess.run(
        [sys.executable, "-m", "assay.orchestration.cli", "run", "--size", "small"],
        cwd=REPO,
        env=env,
        check=True,
    )
    return home


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="an ASSAY_HOME with a completed run (default: build one)")
    parser.add_argument("--screenshot", type=Path, help="save the asset graph as this PNG")
    args = parser.parse_args()
    if not CHROMIUM.exists():
        raise SystemExit(
            f"{CHROMIUM} is missing: apt-get update && apt-get install -y chromium (or `make ui-check`)"
        )
    home = args.home.resolve() if args.home else build_home()
    log_path = Path(tempfile.mkdtemp(prefix="assay-ui-log-")) / "assay-ui.log"
    with running_ui(home, log_path) as url:
        shown = check_asset_graph(url, args.screenshot)
    for layer in LAYERS:
        print(f"{layer:<9} {len(shown[layer]):>3} assets drawn: {', '.join(sorted(shown[layer]))}")
    if args.screenshot:
        print(f"screenshot: {args.screenshot}")


if __name__ == "__main__":
    main()
