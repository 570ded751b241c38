"""The dbt project as Dagster assets: silver, gold and platinum models, seeds, and their tests.

Asset keys are `[layer, model]` and groups are the layer (the model's folder), never the physical
schema, so keys do not change between environments. dbt tests arrive as asset checks.

Each layer is its own `@dbt_assets` step (its own `dbt build --select path:models/<layer>`), so
Dagster's blocking checks sit *between* layers: a failing silver test or quality gate
(`quality/checks.py`) stops gold, and a failing gold one stops platinum. Inside one `dbt build`,
dbt itself skips the children of a failed test.

Silver is three steps: the reference models (seeds, vendors, employees), the daily incremental
models of transactions and events (partitioned like their bronze tables: the run's partition window
goes to dbt as the environment variables ASSAY_MIN_DATE and ASSAY_MAX_DATE), and `rejects`, a table
of the rejected rows of all four sources.

Each call runs dbt inside the step's process by default (`assets/dbt_runner.py`: dbt's `dbtRunner`,
no `dbt` process to start), with the same events and checks as a `dbt` process would give.
"""

import functools
import os
import shutil
import uuid
from collections.abc import Iterator, Mapping, Sequence
from functools import cached_property
from pathlib import Path
from typing import Any

from dagster import (
    AssetCheckResult,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AssetSpec,
    ConfigurableResource,
    MetadataValue,
    Output,
)
from dagster._core.storage.asset_check_execution_record import COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
from dagster_dbt import (
    DagsterDbtCliRuntimeError,
    DagsterDbtTranslator,
    DagsterDbtTranslatorSettings,
    DbtCliInvocation,
    DbtCliResource,
    DbtProject,
    dbt_assets,
)
from dagster_dbt.compat import DBT_PYTHON_VERSION
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from assay.assets.dbt_project import runtime_project
from assay.assets.dbt_runner import dbt_call
from assay.assets.metadata import table_value
from assay.assets.partitions import daily_partitions, run_window, single_run, window_days
from assay.assets.quarantine import quarantine_failures, quarantine_metadata
from assay.core import dbt as dbt_files
from assay.core.database import PostgresResource
from assay.landing.files import PARTITIONED_SOURCES
from assay.landing.quarantine import QuarantinedRow
from assay.quality.store import Window

LAYERS = ("silver", "gold", "platinum")
# The days the daily models rebuild, for dbt (macros/partition_window.sql); unset: every day.
WINDOW_START_ENV = "ASSAY_MIN_DATE"
WINDOW_END_ENV = "ASSAY_MAX_DATE"
# The incremental silver models with daily partitions (models/silver/*.sql: partition_date windows).
DAILY_MODELS = ("int_transactions_checked", "transactions", "int_events_checked", "events")
# dbt selection (select, exclude) per step, in graph order; seeds are reference data that silver
# validates against. Silver steps take every test on their models (indirect selection "eager"), so
# they exclude the layers above: a test that also reads gold runs with gold.
ABOVE_SILVER = "path:models/gold path:models/platinum"
STEPS = {
    "silver": ("path:models/silver path:seeds", " ".join([*DAILY_MODELS, "rejects", ABOVE_SILVER])),
    "silver_daily": (" ".join(DAILY_MODELS), ABOVE_SILVER),
    "silver_rejects": ("rejects", ABOVE_SILVER),
    "gold": ("path:models/gold", ""),
    "platinum": ("path:models/platinum", ""),
}

dbt_project = runtime_project()


class DbtResource(ConfigurableResource):
    """dbt for assay's steps (resource key `dbt`): the shipped project, connected through a profile
    generated from `postgres` for each call, artifacts in `$ASSAY_HOME/dbt/runs/<call>/`."""

    postgres: PostgresResource
    threads: int = 2
    # dbt runs inside the step's process (dbtRunner: no dbt start-up per call) or as a `dbt` process
    in_process: bool = True

    def cli(
        self, args: Sequence[str], *, context: AssetExecutionContext, window: Window | None = None
    ) -> DbtCliInvocation:
        """Start `dbt <args>`; the daily models rebuild `window` (first and last day), or every day."""
        run = context.run.run_id[:8]
        call = dbt_files.runs_dir() / f"{context.op_execution_context.op.name}-{run}-{uuid.uuid4().hex[:6]}"
        profiles = dbt_files.write_profile(conninfo_to_dict(self.postgres.url()), call, self.threads)
        dbt_files.prune_runs()
        cli = _InProcessDbtCli if self.in_process else _DbtCli
        dbt = cli(project_dir=dbt_project, profiles_dir=str(profiles), dbt_executable=dbt_files.executable())
        days = {
            WINDOW_START_ENV: window[0].isoformat() if window else "0001-01-01",
            WINDOW_END_ENV: window[1].isoformat() if window else "9999-12-31",
        }
        # the window goes into the environment of this call only (never this process's os.environ
        # outside an in-process call, which holds dbt_runner's lock): steps on other threads each
        # have their own
        with dbt_call(days, in_process=self.in_process):
            return dbt.cli(args, context=context, target_path=call)


class _DbtCli(DbtCliResource):
    """dagster-dbt's resource, asking the dbt executable for its version once per process: it starts
    `dbt --version` (a second or two of Python start-up) for every new resource, and each call has
    its own (its own profile folder)."""

    @cached_property
    def _cli_version(self):
        return _dbt_version(self.dbt_executable, self.project_dir)


class _InProcessDbtCli(DbtCliResource):
    """dagster-dbt's resource for calls that run in this process: the version is the imported dbt's."""

    @cached_property
    def _cli_version(self):
        return DBT_PYTHON_VERSION  # the installed dbt-core's, parsed by dagster-dbt


@functools.cache
def _dbt_version(executable: str, project_dir: str):
    return DbtCliResource(project_dir=project_dir, dbt_executable=executable)._cli_version


class AssayTranslator(DagsterDbtTranslator):
    def get_asset_spec(
        self, manifest: Mapping[str, Any], unique_id: str, project: DbtProject | None
    ) -> AssetSpec:
        spec = super().get_asset_spec(manifest, unique_id, project)
        node = self.get_resource_props(manifest, unique_id)
        if node["resource_type"] == "source":
            return spec  # the key comes from meta.dagster.asset_key: the bronze asset itself
        layer = _layer(node)
        return spec.replace_attributes(
            key=AssetKey([layer, node["name"]]), group_name=layer
        ).merge_attributes(kinds={"postgres"})


def _layer(node: Mapping[str, Any]) -> str:
    # fqn is [project, folder, ..., name]; seeds live beside silver, which validates against them.
    folder = node["fqn"][1] if len(node["fqn"]) > 2 else ""
    return folder if folder in LAYERS else "silver"


def _step_assets(step: str) -> AssetsDefinition:
    select, exclude = STEPS[step]
    partitioned = step == "silver_daily"

    @dbt_assets(
        manifest=dbt_project.manifest_path,
        project=dbt_project,
        select=select,
        exclude=exclude,
        name=f"dbt_{step}",
        partitions_def=daily_partitions if partitioned else None,
        # a backfill over a range is one run and one dbt call over the whole window
        backfill_policy=single_run if partitioned else None,
        dagster_dbt_translator=AssayTranslator(
            settings=DagsterDbtTranslatorSettings(enable_code_references=False)
        ),
    )
    def _models(context: AssetExecutionContext, dbt: DbtResource, postgres: PostgresResource) -> Iterator:
        # Which tests run where: by default (dbt_project.yml's `indirect_selection: buildable`; dagster-dbt
        # still overrides it when it subsets checks) those whose parents are all built by then, so a
        # gold test that reads silver runs with gold. Silver is split in three steps, and "buildable"
        # would run a test of transactions whose other parent is vendors with vendors, before
        # transactions exists; so whole silver steps run every test of their own models and none of
        # the excluded ones ("eager"): a test of the daily models whose other parent is a reference
        # model runs after both. A subset (some models of a step, from the UI or a test) loses the
        # step's exclusions, so "eager" would run a test of transactions in a reference-only subset.
        # dbt's unit tests check the models' SQL on fixed inputs, not the data: they run in `make test`
        # (tests/test_quality.py), and a production build leaves them out, as dbt recommends (they
        # cost ~1.5 s of every daily build and can only change when the project does).
        args = ["build", "--exclude-resource-type", "unit_test"]
        if step.startswith("silver") and not context.is_subset:
            args += ["--indirect-selection", "eager"]
        window = run_window(context.run.tags)
        first, last = window if window else (None, None)
        if partitioned:
            first, last = window_days(context.partition_time_window)
            if _window_empty(postgres, first, last):
                yield from _unbuilt(
                    context,
                    f"nothing to build over {first} .. {last}: no bronze rows of those days and none in "
                    "the daily models (dbt not started; a rebuild would delete and insert nothing)",
                )
                return
            context.log.info(f"daily models over {first} .. {last}")
        elif step == "silver_rejects" and (unchanged := _rejects_current(context, postgres)):
            yield from _unbuilt(context, unchanged)
            return
        # The window travels in the environment (WINDOW_START_ENV, WINDOW_END_ENV), not as --vars:
        # dbt parses the whole project again whenever its vars change (every new day), but re-parses
        # only the few files that read an environment variable when its value changes.
        call_window = (first, last) if first is not None else None
        # dagster-dbt's row counts are whole-table count(*)s (seconds on a large daily model): the daily
        # models count the window's rows instead, rejects counts itself (_reject_metadata)
        whole_counts = step not in ("silver_daily", "silver_rejects")
        events, quarantined, error = _build_with_quarantine(
            context, dbt, postgres, args, step, whole_counts, call_window
        )
        window_rows = _window_rows(postgres, first, last) if partitioned else {}
        for event in events:
            if isinstance(event, Output):
                key = context.asset_key_for_output(event.output_name)
                extra = _reject_metadata(postgres) if key == REJECTS else {}
                if key.path[-1] in window_rows:
                    extra["dagster/row_count"] = MetadataValue.int(window_rows[key.path[-1]])
                if quarantined and key in {row_key for row_key, _ in quarantined}:
                    extra |= quarantine_metadata([row for row_key, row in quarantined if row_key == key])
                if extra:
                    event = event.with_metadata({**event.metadata, **extra})
            yield event
        if error is not None:
            raise error  # after its events: failed tests still arrive as failed checks

    return _models


def _build_with_quarantine(
    context: AssetExecutionContext,
    dbt: "DbtResource",
    postgres: PostgresResource,
    args: list[str],
    step: str,
    whole_counts: bool = True,
    window: Window | None = None,
) -> tuple[list, list[tuple[AssetKey, QuarantinedRow]], Exception | None]:
    """Run the step's dbt call; if a model fails on rows' data, quarantine those rows and run it
    once more (the checked models then reject them as `quarantined`), so no single row stops the
    others and a rerun never fails the same way. The events of the call that counts are returned
    whole when it ends (a failed first call's partial events would name outputs twice, so the UI
    shows the step's models at its end rather than one by one), with the quarantined rows by the
    asset of the model they made fail, and the call's error if it failed all the same (to raise
    after its events, as dagster-dbt's stream does)."""
    events: list = []
    invocation = dbt.cli(args, context=context, window=window)
    try:
        for event in _stream(invocation, whole_counts):
            events.append(event)  # one by one: what came before an error is kept
        return events, [], None
    except DagsterDbtCliRuntimeError as error:
        try:
            rows = quarantine_failures(postgres, invocation.target_path, f"dbt_{step}")
        except Exception as exc:  # the step's own error is what the user must see, not this one's
            context.log.warning(f"could not isolate the rows behind this failure: {exc!r}")
            rows = []
        if not rows:
            return events, [], error
    finally:
        _keep_partial_parse(invocation.target_path)
    keyed = []
    for node, row in rows:
        keyed.append((AssetKey([_layer(node), node["name"]]), row))
        context.log.warning(
            f"{row.source} bronze row {row.bronze_id} quarantined: {row.reason} (in {row.step}); "
            f"`{row.release_command}` lets it through again"
        )
    context.log.warning(f"{len(rows)} row(s) quarantined; running the step again without them")
    events = []
    again = dbt.cli(args, context=context, window=window)
    try:
        for event in _stream(again, whole_counts):
            events.append(event)
    except DagsterDbtCliRuntimeError as error:
        return events, keyed, error
    finally:
        _keep_partial_parse(again.target_path)
    return events, keyed, None


def _stream(invocation: DbtCliInvocation, whole_counts: bool):
    """The call's events, with dagster-dbt's whole-table row counts or without."""
    stream = invocation.stream()
    return stream.fetch_row_counts() if whole_counts else stream


def _window_rows(postgres: PostgresResource, first, last) -> dict[str, int]:
    """Rows of each daily model in the days first..last (through its partition_date index)."""
    counts = {}
    with postgres.connect(autocommit=True) as conn:
        for model in DAILY_MODELS:
            if conn.execute("select to_regclass(%s) is not null", [f"silver.{model}"]).fetchone()[0]:
                counts[model] = conn.execute(
                    sql.SQL("select count(*) from {} where partition_date between %s and %s").format(
                        sql.Identifier("silver", model)
                    ),
                    [first, last],
                ).fetchone()[0]
    return counts


def _keep_partial_parse(invocation_target: Path) -> None:
    """Let the next layer's dbt call reuse this call's parse (a full parse costs seconds).

    The prepared `partial_parse.msgpack` was made with the default connection settings; dbt throws
    it away when the profile differs (it does: the real host is known only at run time), so each
    layer would parse the whole project again. Replaced atomically; a read-only project just
    parses again.
    """
    source = invocation_target / "partial_parse.msgpack"
    target = dbt_project.project_dir / dbt_project.target_path / "partial_parse.msgpack"
    if not source.exists():
        return
    try:
        staging = target.with_name(f".partial_parse.{os.getpid()}.tmp")
        shutil.copyfile(source, staging)
        os.replace(staging, target)
    except OSError:
        pass


# Materialization metadata of a dbt step that did not start dbt because nothing would change: False
# on every model of such a step (the reason beside it), absent when dbt built the models.
BUILT = "assay/built"
SKIP_REASON = "assay/not_built_because"
CARRIED_FROM = "assay/carried_from_run"


def _window_empty(postgres: PostgresResource, first, last) -> bool:
    """Whether the days first..last hold no row in bronze (raw, retracted rows included) nor in the
    daily models: their rebuild would delete nothing and insert nothing."""
    tables = [("bronze", source) for source in PARTITIONED_SOURCES]
    tables += [("silver", model) for model in DAILY_MODELS]
    with postgres.connect(autocommit=True) as conn:
        for schema, table in tables:
            if conn.execute("select to_regclass(%s) is null", [f"{schema}.{table}"]).fetchone()[0]:
                return False  # a model not built yet is built (and a missing bronze table is dbt's error)
            found = conn.execute(
                sql.SQL("select exists (select from {} where partition_date between %s and %s)").format(
                    sql.Identifier(schema, table)
                ),
                [first, last],
            ).fetchone()[0]
            if found:
                return False
    return True


def _rejects_current(context: AssetExecutionContext, postgres: PostgresResource) -> str | None:
    """Why `rejects` need not be rebuilt, or None: it holds exactly the rejected rows of every checked
    model it reads (the same rows, by bronze id, with the same reasons), so a rebuild would make the
    same table. Compared by count, sum of bronze ids and sum of the reasons' hashes per source (the
    daily models' rejected rows through their partial index)."""
    parents = {dep.asset_key for spec in context.assets_def.specs if spec.key == REJECTS for dep in spec.deps}
    checked = {
        key.path[-1].removeprefix("int_").removesuffix("_checked"): key.path[-1]
        for key in parents
        if key.path[0] == "silver" and key.path[-1].startswith("int_") and key.path[-1].endswith("_checked")
    }
    with postgres.connect(autocommit=True) as conn:
        for relation in ["silver.rejects", *(f"silver.{model}" for model in checked.values())]:
            if conn.execute("select to_regclass(%s) is null", [relation]).fetchone()[0]:
                return None
        held = {
            source: tuple(rest)
            for source, *rest in conn.execute(
                "select source, count(*), sum(bronze_id), sum(hashtext(reason))"
                " from silver.rejects group by 1"
            )
        }
        for source, model in sorted(checked.items()):
            expected = conn.execute(
                sql.SQL(
                    "select count(*), sum(bronze_id), sum(hashtext(reject_reason)) from {}"
                    " where reject_reason is not null"
                ).format(sql.Identifier("silver", model)),
            ).fetchone()
            if tuple(expected) != held.get(source, (0, None, None)):
                return None
        if set(held) - set(checked):
            return None
    return (
        "rejects is current: it holds exactly the rejected rows of "
        + ", ".join(f"silver.{model}" for model in sorted(checked.values()))
        + " (dbt not started)"
    )


def _unbuilt(context: AssetExecutionContext, reason: str) -> Iterator[Output]:
    """The step's outputs without running dbt, each saying so (in its metadata and the step's log)."""
    context.log.info(reason)
    # in graph order, as Dagster requires of a multi-asset's outputs
    specs = {spec.key: spec for spec in context.assets_def.specs if spec.key in context.selected_asset_keys}
    ordered: list[AssetKey] = []

    def visit(key: AssetKey) -> None:
        if key in specs and key not in ordered:
            for dep in specs[key].deps:
                visit(dep.asset_key)
            ordered.append(key)

    for key in sorted(specs, key=lambda k: k.to_user_string()):
        visit(key)
    for key in ordered:
        name = context.assets_def.get_output_name_for_asset_key(key)
        yield Output(None, output_name=name, metadata={BUILT: False, SKIP_REASON: reason})
    yield from _carried_checks(context, reason)


def _carried_checks(context: AssetExecutionContext, reason: str) -> Iterator[AssetCheckResult]:
    """Each selected dbt test's latest verdict, carried over to this run: nothing was built, so the
    tables are those it judged, and a failure still blocks what reads them. Without this, Dagster
    logs a warning per blocking check per downstream step (two dozen on a day without data). A test
    never evaluated on this instance gets no result (Dagster then says so).
    Reads the instance's check history through a Dagster internal: recheck when upgrading Dagster."""
    # the check history of the instance's event storage (no such query on the instance itself): the
    # latest completed evaluation, as this run has already planned its own
    storage = context.instance.event_log_storage
    for key in sorted(context.selected_asset_check_keys, key=lambda k: k.to_user_string()):
        latest = storage.get_asset_check_execution_history(
            key, limit=1, status=COMPLETED_ASSET_CHECK_EXECUTION_RECORD_STATUSES
        )
        if not latest or latest[0].evaluation is None:
            continue
        record, evaluation = latest[0], latest[0].evaluation
        yield AssetCheckResult(
            asset_key=key.asset_key,
            check_name=key.name,
            passed=evaluation.passed,
            severity=evaluation.severity,
            description=evaluation.description,
            metadata={
                **evaluation.metadata,
                CARRIED_FROM: MetadataValue.text(record.run_id),
                SKIP_REASON: reason,
            },
        )


dbt_models = [_step_assets(step) for step in STEPS]


REJECTS = AssetKey(["silver", "rejects"])


def _reject_metadata(postgres: PostgresResource) -> dict[str, MetadataValue]:
    """Rejected rows by source and reason, so the UI shows why rows did not reach silver."""
    with postgres.connect(autocommit=True) as conn:
        rows = conn.execute(
            "select source, reason, count(*) from silver.rejects group by 1, 2 order by 1, 3 desc"
        ).fetchall()
    return {
        # counted here as well, so the metadata and the breakdown agree
        "dagster/row_count": MetadataValue.int(sum(n for _, _, n in rows)),
        "rejects_by_reason": table_value([{"source": s, "reason": r, "rows": n} for s, r, n in rows]),
        **{f"rejects/{source}/{reason}": MetadataValue.int(n) for source, reason, n in rows},
    }


def dbt_resource(postgres: PostgresResource | None = None) -> DbtResource:
    return DbtResource(postgres=postgres or PostgresResource())
