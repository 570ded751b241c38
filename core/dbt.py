"""Where assay's dbt project is and how dbt reaches the database, without touching the environment.

- The project ships inside the package (`assay.dbt_project`), so a wheel installed anywhere finds it.
- Its manifest is prepared at build time (`make setup`: `dagster-dbt project prepare-and-package`)
  and shipped beside it. An install without one (`pip install .` from a fresh checkout) parses the
  project once into the data folder, keyed by the project's content, the first time it is needed.
- dbt connects through a profile generated from `PostgresResource` for each call (`write_profile`):
  no connection setting travels through environment variables. The project's own `profiles.yml`
  only serves `dbt parse`, which needs a profile but never connects.
- Each dbt call writes its artifacts to its own folder under `$ASSAY_HOME/dbt/runs`; the newest few
  are kept (`prune_runs`), so they neither pile up nor land inside the installed package.
"""

from __future__ import annotations

import hashlib
import importlib.util
import os
import shutil
import sys
from pathlib import Path

import yaml

from assay.core.settings import get_settings

PROFILE = "assay"
KEEP_RUNS = 20


def project_dir() -> Path:
    """The dbt project shipped in the package (the repository's `dbt_project/` in a checkout)."""
    spec = importlib.util.find_spec("assay.dbt_project")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the dbt project is missing from the assay package: reinstall assay")
    return Path(next(iter(spec.submodule_search_locations))).resolve()


def packaged_manifest() -> Path:
    return project_dir() / "target" / "manifest.json"


def local_target() -> Path:
    """Where a manifest parsed at run time lives: one folder per version of the project's files."""
    digest = hashlib.sha256()
    root = project_dir()
    for path in sorted(root.rglob("*")):
        if (
            path.is_file()
            and "target" not in path.relative_to(root).parts
            and path.suffix in {".sql", ".yml", ".yaml", ".csv", ".md"}
        ):
            digest.update(path.relative_to(root).as_posix().encode())
            digest.update(path.read_bytes())
    return get_settings().home_dir / "dbt" / f"manifest-{digest.hexdigest()[:12]}"


def manifest_path() -> Path:
    """The shipped manifest, else the one parsed into the data folder (which may not exist yet)."""
    shipped = packaged_manifest()
    return shipped if shipped.exists() else local_target() / "manifest.json"


def executable() -> str:
    """The dbt installed beside this interpreter (a venv need not be activated), else PATH's."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


def write_profile(params: dict[str, str], folder: Path, threads: int = 2) -> Path:
    """A `profiles.yml` for these libpq connection parameters in `folder` (readable by its owner
    only: it may hold a password); returns the folder, for `--profiles-dir`."""
    output = {
        "type": "postgres",
        "host": params.get("host", "localhost"),
        "port": int(params.get("port") or 5432),
        "user": params.get("user", "postgres"),
        "password": params.get("password", ""),
        "dbname": params["dbname"],
        "sslmode": params.get("sslmode", "prefer"),
        "schema": "public",
        "threads": threads,
    }
    profile = {PROFILE: {"target": "default", "outputs": {"default": output}}}
    folder.mkdir(parents=True, exist_ok=True)
    staging = folder / f".profiles.{os.getpid()}.yml"
    staging.write_text(yaml.safe_dump(profile, sort_keys=False))
    staging.chmod(0o600)
    os.replace(staging, folder / "profiles.yml")  # atomic: concurrent steps never read half a file
    return folder


def runs_dir() -> Path:
    return get_settings().home_dir / "dbt" / "runs"


def prune_runs(keep: int = KEEP_RUNS) -> None:
    """Remove all but the newest `keep` dbt call folders (each holds its own compiled SQL and logs)."""
    folder = runs_dir()
    if not folder.is_dir():
        return
    calls = sorted((p for p in folder.iterdir() if p.is_dir()), key=lambda p: p.stat().st_mtime)
    for old in calls[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def is_time_spine(node: dict) -> bool:
    """A manifest node that is the semantic layer's calendar (a `time_spine:` model in gold): it lives
    with the marts for dbt's sake but is not one, so the API, quality rules and scores leave it out."""
    return bool(node.get("time_spine"))
