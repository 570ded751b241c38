"""The dbt project handle, built once.

Kept apart from the dbt assets so `dagster-dbt project prepare-and-package --file
assets/dbt_project.py` (run by `make setup`) can import it before any manifest exists. Under
`dagster dev` the manifest is re-parsed on load; elsewhere the prepared one is used as is.
"""

import shutil
import sys
from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"


def dbt_executable() -> str:
    """The dbt installed beside this interpreter (a venv need not be activated), else PATH's."""
    beside = Path(sys.executable).parent / "dbt"
    return str(beside) if beside.exists() else (shutil.which("dbt") or "dbt")


dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
