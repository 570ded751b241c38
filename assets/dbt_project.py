"""The dbt project handle, built once.

Kept apart from the dbt assets so `dagster-dbt project prepare-and-package --file
assets/dbt_project.py` (run by `make setup`) can import it before any manifest exists. Under
`dagster dev` the manifest is re-parsed on load; elsewhere the prepared one is used as is.
"""

from pathlib import Path

from dagster_dbt import DbtProject

DBT_PROJECT_DIR = Path(__file__).resolve().parent.parent / "dbt_project"

dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()
