"""Great Expectations profile suites over silver and gold, defined in code, run on an ephemeral context.

Row-level rules (types, not-null, uniqueness, ranges, allowed values, relationships, reconciliation)
are dbt's: its tests and contracts are their one home. GX adds what dbt tests do not express well:
one `gx_profile` suite per table (WARN, a Dagster asset check in `assay.assets.quality`) with
distribution bounds (amount quantiles, share of each category, anomaly share, top vendor share) and
the row-count change against the previous run. A failure means the data looks unusual and is worth
a look, not that it is wrong.

Nothing is written to disk: no GX project folder, no stored results. The context talks to the same
database as everything else, through SQLAlchemy's psycopg (3) dialect, with the URL that
`PostgresResource` gives (a unix-socket directory goes into the `host` query parameter, which GX's
`add_postgres` would refuse, hence the generic `add_sql`).
"""

import functools
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import psycopg
from dagster import AssetCheckSeverity
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from assay.core.database import PostgresResource
from assay.quality.store import Window

# Index columns that identify a failing row in the check's metadata.
ROW_ID = {
    "silver.transactions": ["transaction_id"],
    "silver.events": ["bronze_id"],
    "silver.vendors": ["vendor_id"],
    "silver.employees": ["employee_id"],
    "gold.monthly_summary": ["month", "category", "department"],
    "gold.category_trends": ["week_start", "category"],
    "gold.vendor_spend": ["vendor_id"],
    "gold.vendor_monthly": ["month", "vendor_id", "category", "department"],
}


@dataclass(frozen=True)
class SuiteKind:
    check_name: str
    severity: AssetCheckSeverity
    blocking: bool
    description: str


SUITE_KINDS = (
    SuiteKind(
        "gx_profile",
        AssetCheckSeverity.WARN,
        False,
        "Great Expectations: distribution bounds and row-count change against the previous run.",
    ),
)


@dataclass
class Facts:
    """What the suites compare against, read from the database when the check runs.

    With a `window` (a run over some days of a daily-partitioned table), the suite profiles the rows
    of those days (`window_rows` of them) and the row-count change is the whole table's
    (`table_rows`) against its previous scoring, counted by the gate rather than by GX.
    """

    categories: list[str]
    previous_rows: int | None
    max_row_count_change: float
    window: Window | None = None
    table_rows: int | None = None
    window_rows: int | None = None


def read_facts(
    conn: psycopg.Connection,
    previous_rows: int | None,
    max_row_count_change: float,
    window: Window | None = None,
    table_rows: int | None = None,
    window_rows: int | None = None,
) -> Facts:
    categories = [r[0] for r in conn.execute("select category from silver.categories order by 1")]
    return Facts(categories, previous_rows, max_row_count_change, window, table_rows, window_rows)


def build_suite(table: str, check_name: str, facts: Facts) -> list:
    """The expectations of one suite (`gx_profile`) for `schema.table`."""
    import great_expectations.expectations as gxe

    builders: dict[tuple[str, str], Callable[[Any, Facts], list]] = {
        ("silver.transactions", "gx_profile"): _transactions_profile,
        ("silver.events", "gx_profile"): _events_profile,
        ("silver.vendors", "gx_profile"): _vendors_profile,
        ("silver.employees", "gx_profile"): _employees_profile,
        ("gold.monthly_summary", "gx_profile"): _monthly_summary_profile,
        ("gold.category_trends", "gx_profile"): _category_trends_profile,
        ("gold.vendor_spend", "gx_profile"): _vendor_spend_profile,
    }
    expectations = builders.get((table, check_name), lambda _gxe, _facts: [])(gxe, facts)
    bounds = _row_count_bounds(facts)
    # the batch is the whole table unless the run has a window; then the gate counts the table itself
    if check_name == "gx_profile" and bounds and facts.window is None:
        expectations.append(
            gxe.ExpectTableRowCountToBeBetween(
                min_value=bounds[0], max_value=bounds[1], description=_row_count_text(facts)
            )
        )
    return expectations


def _row_count_bounds(facts: Facts) -> tuple[int, int] | None:
    """The whole table's allowed row counts: within ±max change of the previous run's."""
    if not facts.previous_rows:
        return None
    change = facts.max_row_count_change
    low = int(facts.previous_rows * (1 - change)) if change < 1 else 0
    return low, int(facts.previous_rows * (1 + change)) + 1


def _row_count_text(facts: Facts) -> str:
    return f"row count within ±{facts.max_row_count_change:.0%} of the previous run ({facts.previous_rows:,})"


def _whole_table_row_count(facts: Facts) -> dict | None:
    """The row-count expectation of a windowed suite, over the whole table: a failure, or None."""
    bounds = _row_count_bounds(facts)
    if bounds is None or facts.table_rows is None or bounds[0] <= facts.table_rows <= bounds[1]:
        return None
    return {
        "expectation": "expect_table_row_count_to_be_between",
        "column": "table",
        "observed": f"observed {facts.table_rows:,} rows in the whole table",
        "description": _row_count_text(facts),
    }


# -- silver ----------------------------------------------------------------------------------


def _transactions_profile(gxe, facts: Facts) -> list:
    return [
        # the reporting amounts of expense claims: most between a coffee and a consulting day
        gxe.ExpectColumnQuantileValuesToBeBetween(
            column="amount_eur",
            quantile_ranges={
                "quantiles": [0.05, 0.5, 0.95],
                "value_ranges": [[1, 500], [20, 2_000], [100, 25_000]],
            },
        ),
        # at most a fifth of the transactions come without a category
        gxe.ExpectColumnValuesToNotBeNull(column="category", mostly=0.8),
        gxe.UnexpectedRowsExpectation(
            description="no category takes more than 40 % of the categorised transactions",
            unexpected_rows_query=(
                "select * from (select category, count(*) as n,"
                " round(100.0 * count(*) / sum(count(*)) over (), 2) as share_pct"
                " from {batch} where category is not null group by category) shares"
                " where share_pct > 40"
            ),
        ),
    ]


def _events_profile(gxe, facts: Facts) -> list:
    return [
        gxe.UnexpectedRowsExpectation(
            description="every case has a Submit event",
            unexpected_rows_query=(
                "select case_id, count(*) as events from {batch} group by case_id"
                " having count(*) filter (where activity = 'Submit') = 0"
            ),
        ),
    ]


def _vendors_profile(gxe, facts: Facts) -> list:
    return [
        gxe.ExpectColumnValuesToNotBeNull(column="country", mostly=0.95),
        gxe.ExpectColumnValuesToNotBeNull(column="default_category", mostly=0.95),
    ]


def _employees_profile(gxe, facts: Facts) -> list:
    return [
        # departments are a short list; hundreds of them means a free-text field slipped in
        gxe.ExpectColumnUniqueValueCountToBeBetween(column="department", min_value=1, max_value=50),
    ]


# -- gold ------------------------------------------------------------------------------------


def _monthly_summary_profile(gxe, facts: Facts) -> list:
    return [
        # a category that never appears in a year of spend is more likely a mapping bug than a fact
        gxe.ExpectColumnDistinctValuesToContainSet(column="category", value_set=facts.categories),
    ]


def _category_trends_profile(gxe, facts: Facts) -> list:
    return [
        # |z| > 2 is rare by construction; many flags mean the history is too short or too noisy
        gxe.ExpectColumnValuesToBeInSet(column="is_anomaly", value_set=[False], mostly=0.9),
    ]


def _vendor_spend_profile(gxe, facts: Facts) -> list:
    return [
        gxe.ExpectColumnMaxToBeBetween(
            column="share_of_spend_pct", max_value=50, description="no vendor takes half of all spend"
        ),
    ]


# -- running ---------------------------------------------------------------------------------


@dataclass
class SuiteOutcome:
    suite: str
    passed: bool
    evaluated: int
    failures: list[dict] = field(default_factory=list)  # one per failed expectation
    failing_rows: list[dict] = field(default_factory=list)
    window: Window | None = None  # the days profiled; None: the whole table
    empty_window: bool = False  # the window had no rows: its profile expectations were not run

    def summary(self) -> str:
        scope = f" over {self.window[0]} .. {self.window[1]}" if self.window else ""
        if self.empty_window:
            scope += " (no rows in the window: the distribution expectations had nothing to profile)"
        if self.passed:
            return f"GX suite {self.suite}{scope}: all {self.evaluated} expectations met."
        parts = [f"{f['expectation']}({f['column']}): {f['observed']}" for f in self.failures[:4]]
        more = f" and {len(self.failures) - 4} more" if len(self.failures) > 4 else ""
        return (
            f"GX suite {self.suite}{scope}: {len(self.failures)} of {self.evaluated} expectations failed: "
            + "; ".join(parts)
            + more
            + "."
        )


GX_APPLICATION = "assay-gx"  # how the quality gates' connections show in pg_stat_activity


def gx_connection_string(postgres: PostgresResource) -> str:
    """SQLAlchemy URL (psycopg 3 dialect) for the assay database, socket directories included."""
    from sqlalchemy.engine import URL

    params = conninfo_to_dict(postgres.url())
    host, port = params.get("host"), params.get("port")
    query: dict[str, str] = {}
    if host and host.startswith("/"):
        query["host"], host = host, None
        if port:
            query["port"], port = str(port), None
    if params.get("sslmode"):
        query["sslmode"] = params["sslmode"]
    query["application_name"] = GX_APPLICATION
    url = URL.create(
        "postgresql+psycopg",
        username=params.get("user"),
        password=params.get("password") or None,
        host=host,
        port=int(port) if port else None,
        database=params.get("dbname"),
        query=query,
    )
    return url.render_as_string(hide_password=False)


@functools.cache
def _context(connection_string: str):
    """One ephemeral GX context and SQL data source per process and database."""
    import great_expectations as gx
    from great_expectations.data_context.types.base import (
        DataContextConfig,
        InMemoryStoreBackendDefaults,
        ProgressBarsConfig,
    )

    context = gx.get_context(
        mode="ephemeral",
        project_config=DataContextConfig(
            analytics_enabled=False,  # nothing leaves the machine
            progress_bars=ProgressBarsConfig(globally=False),
            store_backend_defaults=InMemoryStoreBackendDefaults(),
        ),
    )
    with warnings.catch_warnings():
        # GX suggests its Postgres data source, which refuses socket directories (see above)
        warnings.simplefilter("ignore")
        # The context outlives connections: a restarted server (or an operator's
        # pg_terminate_backend) leaves dead ones in the engine's pool, so each checkout is pinged.
        source = context.data_sources.add_sql(
            "assay", connection_string=connection_string, kwargs={"pool_pre_ping": True}
        )
    return context, source


def _batch(postgres: PostgresResource, table: str, window: Window | None):
    """The table's batch: the whole table, or the rows of a window of days (a query asset)."""
    _, source = _context(gx_connection_string(postgres))
    schema, name = table.split(".")
    asset_name = table if window is None else f"{table} {window[0]}..{window[1]}"
    try:
        asset = source.get_asset(asset_name)
    except LookupError:
        if window is None:
            asset = source.add_table_asset(asset_name, table_name=name, schema_name=schema)
        else:
            # dates rendered as literals by psycopg (GX takes a query text, not parameters)
            query = sql.SQL("select * from {} where partition_date between {} and {}").format(
                sql.Identifier(schema, name), sql.Literal(window[0]), sql.Literal(window[1])
            )
            asset = source.add_query_asset(asset_name, query=query.as_string())
    try:
        definition = asset.get_batch_definition("whole table")
    except (KeyError, LookupError):
        definition = asset.add_batch_definition_whole_table("whole table")
    return definition.get_batch()


def run_suite(
    postgres: PostgresResource, table: str, check_name: str, facts: Facts, sample_rows: int
) -> SuiteOutcome:
    """Validate one suite against the table; failing rows are sampled, never all fetched."""
    import great_expectations as gx
    import great_expectations.expectations as gxe

    name = f"{table}.{check_name.removeprefix('gx_')}"
    expectations = build_suite(table, check_name, facts)
    outcome = SuiteOutcome(name, True, len(expectations), window=facts.window)
    if facts.window is not None and check_name == "gx_profile" and facts.previous_rows:
        outcome.evaluated += 1  # the whole table's row count, counted by the gate
        failure = _whole_table_row_count(facts)
        if failure:
            outcome.passed = False
            outcome.failures.append(failure)
    if not expectations:
        return outcome
    if facts.window is not None and facts.window_rows == 0:
        outcome.evaluated -= len(expectations)
        outcome.empty_window = True  # no rows to profile: said in the summary, not counted as met
        return outcome
    batch = _batch(postgres, table, facts.window)
    # Row-level expectations report a sample of failing rows (SUMMARY); unexpected-rows queries
    # return only the offending groups, so they can be read in full (COMPLETE).
    groups = [
        ([e for e in expectations if not isinstance(e, gxe.UnexpectedRowsExpectation)], "SUMMARY"),
        ([e for e in expectations if isinstance(e, gxe.UnexpectedRowsExpectation)], "COMPLETE"),
    ]
    for group, result_format in groups:
        if not group:
            continue
        suite = gx.ExpectationSuite(name=name, expectations=group)
        result = batch.validate(
            suite,
            result_format={
                "result_format": result_format,
                "partial_unexpected_count": sample_rows,
                "unexpected_index_column_names": ROW_ID.get(table, []),
                "return_unexpected_index_query": False,
            },
        )
        for res in result.results:
            if res.success:
                continue
            outcome.passed = False
            outcome.failures.append(_failure(res))
            outcome.failing_rows.extend(_rows(res, sample_rows))
    outcome.failing_rows = outcome.failing_rows[: max(sample_rows, 1) * 4]
    return outcome


def _failure(res) -> dict:
    config = res.expectation_config
    kwargs = config.kwargs
    result = res.result or {}
    column = kwargs.get("column") or ", ".join(kwargs.get("column_list", []) or []) or "table"
    error = _exception_message(res.exception_info)
    if error:
        observed = "error: " + error
    elif "unexpected_count" in result:
        observed = (
            f"{result['unexpected_count']:,} unexpected ({result.get('unexpected_percent') or 0:.2f} %)"
        )
    else:
        observed = f"observed {_short(result.get('observed_value'))}"
    return {
        "expectation": config.type,
        "column": column,
        "observed": observed,
        "description": config.description or "",
    }


def _exception_message(info: Any) -> str | None:
    """GX nests exception info by metric; find the first raised one."""
    if not isinstance(info, dict):
        return None
    if info.get("raised_exception"):
        return (str(info.get("exception_message") or "exception").splitlines() or ["exception"])[0][:200]
    for value in info.values():
        found = _exception_message(value)
        if found:
            return found
    return None


def _rows(res, limit: int) -> list[dict]:
    result = res.result or {}
    rows = result.get("partial_unexpected_index_list") or (result.get("details") or {}).get("unexpected_rows")
    if not rows:
        values = result.get("partial_unexpected_list") or []
        rows = [{"value": v} for v in values]
    return [
        {"expectation": res.expectation_config.type} | {k: _short(v) for k, v in dict(row).items()}
        for row in rows[:limit]
    ]


def _short(value: Any) -> Any:
    if isinstance(value, (int, float, bool)) or value is None:
        return value
    if isinstance(value, Decimal):
        return float(value)
    text = str(value)
    return text if len(text) <= 120 else text[:117] + "..."
