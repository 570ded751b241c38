"""The benches' own homes: generate a sample and run the pipeline there once, before measuring."""

from assay.core.database import PostgresResource
from assay.core.settings import get_settings


def prepare(marker: str, size: str = "small") -> None:
    """Generate the `size` sample (a name or a number of lines) in ASSAY_HOME and run the pipeline
    there, unless the file `marker` in that home says an earlier run already did."""
    settings = get_settings()
    done = settings.home_dir / marker
    if done.exists():
        return
    from assay.landing.sample import generate
    from assay.orchestration.pipeline import run_pipeline

    print(f"generating the {size} sample and running the pipeline in {settings.home_dir} ...", flush=True)
    lines = int(size) if size.isascii() and size.isdigit() else size
    generate(settings.landing_dir, settings.truth_dir, size=lines, seed=42)
    outcome = run_pipeline(lambda line: None)
    if not outcome.success:
        raise SystemExit(f"the pipeline failed: {outcome.failures}")
    PostgresResource().url()
    done.touch()


def step_spans(instance, run_id: str) -> dict[str, tuple[float, float]]:
    """(start, end) timestamps of each finished step of a run (succeeded or failed), from its
    stored step events."""
    from dagster import DagsterEventType

    ended = (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE)
    begun: dict[str, float] = {}
    spans: dict[str, tuple[float, float]] = {}
    for record in instance.all_logs(run_id):
        event = record.dagster_event
        if event is None or event.step_key is None:
            continue
        if event.event_type == DagsterEventType.STEP_START:
            begun[event.step_key] = record.timestamp
        elif event.event_type in ended:
            spans[event.step_key] = (begun.get(event.step_key, record.timestamp), record.timestamp)
    return spans
