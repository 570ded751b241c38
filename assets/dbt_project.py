"""The shipped dbt project as dagster-dbt sees it, and the one the steps run with.

`dbt_project` is what `dagster-dbt project prepare-and-package --file assets/dbt_project.py` (run
by `make setup`) prepares: the manifest lands beside the project and ships in the package. Under
`dagster dev` the manifest is re-parsed on load; elsewhere the prepared one is used as is.
`runtime_project()` falls back to a manifest parsed once into the data folder when none was shipped.
"""

import functools

from dagster_dbt import DbtCliResource, DbtProject

from assay.core import dbt as dbt_files

_ROOT = dbt_files.project_dir()
dbt_project = DbtProject(project_dir=_ROOT, profiles_dir=_ROOT)
dbt_project.prepare_if_dev()


@functools.cache
def runtime_project() -> DbtProject:
    """The shipped project, or (an install without a prepared manifest) the same project parsed once
    into `$ASSAY_HOME/dbt/manifest-<content hash>/`."""
    if dbt_project.manifest_path.exists():
        return dbt_project
    local = DbtProject(project_dir=_ROOT, profiles_dir=_ROOT, target_path=dbt_files.local_target())
    if not local.manifest_path.exists():
        # `dbt parse` needs no database: the project's own profiles.yml serves it
        dbt = DbtCliResource(project_dir=local, dbt_executable=dbt_files.executable())
        dbt.cli(["parse", "--quiet"], target_path=local.target_path).wait()
    return local
