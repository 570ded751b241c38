"""The Dagster UI in a real browser: `assay ui` on this session's pipeline, its asset graph read in
headless Chromium (tests/ui_check.py does the work; `make ui-check` runs it as a script and saves
docs/ui-asset-graph.png)."""

import pytest
from ui_check import (
    CHROMIUM,
    LAYERS,
    check_asset_graph,
    expected_assets,
    label_matches,
    missing_assets,
    running_ui,
)

pytestmark = pytest.mark.integration  # a real server, a browser or subprocesses throughout


def test_labels_match_names_with_their_middle_cut_out():
    assert label_matches("int_emplo…_checked", "int_employees_checked")
    assert label_matches("vendors", "vendors")
    assert not label_matches("vendors", "vendor_spend")
    assert not label_matches("int_emplo…_checked", "int_events_checked")
    shown = {"bronze": ["events", "vendors"], "silver": ["int_emplo…_checked"]}
    expected = {
        "bronze": {"events", "vendors", "employees"},
        "silver": {"int_employees_checked"},
        "gold": {"x"},
    }
    assert missing_assets(shown, expected) == {"bronze": {"employees"}, "gold": {"x"}}


@pytest.mark.skipif(
    not CHROMIUM.exists(), reason=f"{CHROMIUM} is not installed (`make ui-check` installs it)"
)
def test_the_asset_graph_shows_the_layers_and_their_assets(pipeline_run, assay_home, tmp_path):
    pytest.importorskip("playwright", reason="playwright (Python) is not installed: pip install -e '.[dev]'")
    with running_ui(assay_home, tmp_path / "assay-ui.log") as url:
        shown = check_asset_graph(url)  # asserts every layer group and each of its assets is drawn
    expected = expected_assets()
    assert {layer: len(shown[layer]) for layer in LAYERS} == {layer: len(expected[layer]) for layer in LAYERS}
