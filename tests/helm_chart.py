"""The chart deploy/helm/assay as Helm reads it, from the files alone (no helm binary, and Dagster's
chart is not downloaded): its Chart.yaml, the values it hands its dependency (Dagster's own chart),
and the read API objects its template renders. Used by tests/test_deploy.py and
tests/test_container.py.
"""

import re
from pathlib import Path

import yaml

CHART = Path(__file__).resolve().parent.parent / "deploy" / "helm" / "assay"
API_TEMPLATE = CHART / "templates" / "api.yaml"
DAGSTER_CHART = "dagster"
# Helm's templates are Go text/template: `{{` opens an action; text outside actions is copied as is
TEMPLATE_ACTION = re.compile(r"\{\{")


def chart() -> dict:
    return yaml.safe_load((CHART / "Chart.yaml").read_text())


def chart_values() -> dict:
    return yaml.safe_load((CHART / "values.yaml").read_text())


def misplaced_keys(values: dict, metadata: dict) -> set[str]:
    """Top-level keys that nothing reads: Helm hands a dependency only its own block (by name or
    alias) and `global`, and the chart's own template (the read API) reads no values, so any other
    key, such as `runLauncher` written at the top instead of under `dagster:`, is silently ignored."""
    read = {"global"} | {d.get("alias") or d["name"] for d in metadata.get("dependencies", [])}
    return set(values) - read


def dependency_values(values: dict, name: str = DAGSTER_CHART) -> dict:
    """The values Helm hands the dependency `name`: its block of the parent's values, with the
    parent's `global` copied in (the parent's globals win over the block's own)."""
    block = dict(values.get(name) or {})
    block["global"] = {**(block.get("global") or {}), **(values.get("global") or {})}
    return block


def render_verbatim(text: str) -> list[dict]:
    """The objects Helm renders from a template without a template action: the file's own, so the
    same file applied with kubectl gives the same objects."""
    action = TEMPLATE_ACTION.search(text)
    assert action is None, (
        f"template action at offset {action.start()}: Helm's rendering would differ from the file as "
        "kubectl applies it"
    )
    return [document for document in yaml.safe_load_all(text) if document]


def rendered_api_objects() -> list[dict]:
    return render_verbatim(API_TEMPLATE.read_text())
