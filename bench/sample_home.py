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
