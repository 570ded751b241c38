"""The event log that the process-mining assets mine: from silver by default, or any CSV / XES log.

One normalised shape whatever the source (polars):

- events: `case_id`, `event_index` (0-based position in the case), `activity` (a polars
  `Categorical`, parsed as one by every reader: the DFG groups on its codes), `event_ts` (UTC),
  `resource`, `start_ts` (UTC, the matching `start` event's time where the log has lifecycle
  transitions, else null); sorted by case and position. Events with the same timestamp keep their
  source order (silver: load order, CSV/XES: file order), a stable sort on the log's position as
  pm4py's, so the order inside a case is deterministic.
- cases: `case_id` and the case attributes `amount`, `category`, `department`, `vendor_id`,
  `vendor_name` (null where the source has none), plus first/last timestamp, event count, duration.

The asset (`assay.assets.process`) writes them to `gold.process_event_log` and `gold.process_cases`;
the analyses (`assay.mining.mine`) read only those two tables, so they mine whatever log was loaded last.
"""

import glob
from collections import deque
from pathlib import Path
from typing import Literal

import polars as pl
import psycopg
from dagster import Config
from pydantic import Field

from assay.core.tables import read_frame

EVENT_LOG_TABLE = "gold.process_event_log"
CASES_TABLE = "gold.process_cases"
CASE_ATTRIBUTES = ("amount", "category", "department", "vendor_id", "vendor_name")

EVENT_COLUMNS = (
    ("case_id", "text not null"),
    ("event_index", "integer not null"),
    ("activity", "text not null"),
    ("event_ts", "timestamp with time zone not null"),
    ("resource", "text"),
    ("start_ts", "timestamp with time zone"),
)
CASE_COLUMNS = (
    ("case_id", "text not null"),
    ("amount", "double precision"),
    ("category", "text"),
    ("department", "text"),
    ("vendor_id", "text"),
    ("vendor_name", "text"),
    ("events", "integer not null"),
    ("started_at", "timestamp with time zone not null"),
    ("ended_at", "timestamp with time zone not null"),
    ("duration_hours", "double precision not null"),
)
_EVENT_SCHEMA = {
    "case_id": pl.String,
    "activity": pl.Categorical,  # parsed straight into codes: see `normalise`
    "event_ts": pl.Datetime("us", "UTC"),
    "resource": pl.String,
}
_CASE_SCHEMA = {
    "case_id": pl.String,
    "amount": pl.Float64,
    "category": pl.String,
    "department": pl.String,
    "vendor_id": pl.String,
    "vendor_name": pl.String,
}
_CSV_DEFAULTS = {
    "case_id": "case_id",
    "activity": "activity",
    "timestamp": "timestamp",
    "resource": "resource",
    "lifecycle": "lifecycle",
}
# XES standard attribute keys, as pm4py names the columns it reads.
_XES_DEFAULTS = {
    "case_id": "case:concept:name",
    "activity": "concept:name",
    "timestamp": "time:timestamp",
    "resource": "org:resource",
    "lifecycle": "lifecycle:transition",
}


class EventLogConfig(Config):
    """Where the event log comes from. The default mines the approval events in silver."""

    source: Literal["silver", "csv", "xes"] = Field(
        default="silver", description="`silver` (silver.events + transactions), `csv` or `xes`."
    )
    path: str | None = Field(
        default=None,
        description="csv: a file, a folder of .csv files or a glob; xes: a .xes or .xes.gz file.",
    )
    case_id_column: str | None = Field(default=None, description="Default `case_id` (csv), XES key (xes).")
    activity_column: str | None = Field(default=None, description="Default `activity` / `concept:name`.")
    timestamp_column: str | None = Field(default=None, description="Default `timestamp` / `time:timestamp`.")
    resource_column: str | None = Field(
        default=None, description="Default `resource` / `org:resource`; used only when the column exists."
    )
    lifecycle_column: str | None = Field(
        default=None,
        description="Lifecycle transition column; default `lifecycle` (csv) / `lifecycle:transition` "
        "(xes); used only when the column exists.",
    )
    lifecycle: Literal["complete", "all"] = Field(
        default="complete",
        description="`complete` (pm4py's convention): the control flow is made of the `complete` "
        "events (and those without a transition); each is paired with the earliest unmatched `start` "
        "of the same activity in its case for its service time; other transitions are left out. "
        "`all`: every event is an activity occurrence, whatever its transition.",
    )
    timestamp_format: str | None = Field(
        default=None, description="strftime format of the timestamp column; unset = ISO 8601 (inferred)."
    )
    timestamp_time_zone: str = Field(
        default="UTC", description="Time zone of timestamps written without an offset."
    )
    case_attribute_columns: dict[str, str] = Field(
        default_factory=dict,
        description="Case attribute -> source column, for any of amount, category, department, "
        "vendor_id, vendor_name (per case, the first non-null value wins).",
    )


class EventLogError(ValueError):
    """The configured log cannot be read as an event log; the message says why."""


def from_silver(conn: psycopg.Connection) -> tuple[pl.DataFrame, pl.DataFrame]:
    """The approval event log and its case attributes, joined in polars from the silver tables."""
    events = read_frame(
        conn,
        "select case_id, activity, event_ts, resource, bronze_id from silver.events",
        {**_EVENT_SCHEMA, "bronze_id": pl.Int64},
    )
    transactions = read_frame(
        conn,
        "select transaction_id, amount_eur::float8, category, employee_id, vendor_id"
        " from silver.transactions",
        {
            "case_id": pl.String,
            "amount": pl.Float64,
            "category": pl.String,
            "employee_id": pl.String,
            "vendor_id": pl.String,
        },
    )
    employees = read_frame(
        conn,
        "select employee_id, department from silver.employees",
        {"employee_id": pl.String, "department": pl.String},
    )
    vendors = read_frame(
        conn,
        "select vendor_id, vendor_name from silver.vendors",
        {"vendor_id": pl.String, "vendor_name": pl.String},
    )
    cases = (
        transactions.join(employees, on="employee_id", how="left")
        .join(vendors, on="vendor_id", how="left")
        .select(list(_CASE_SCHEMA))
    )
    # bronze_id follows the landing files' line order: the tie-break for equal timestamps
    return events.rename({"bronze_id": "source_order"}), cases


# Readers return raw events (with `source_order`, possibly incomplete rows) and case attributes.


def from_csv(config: EventLogConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    paths = _csv_paths(config.path)
    # the headers alone: a wrong column fails before the files are read
    headers = [pl.read_csv(p, n_rows=0, infer_schema=False).columns for p in paths]
    check_columns(list(dict.fromkeys(c for h in headers for c in h)), config, _CSV_DEFAULTS)
    # all text, as the mapping decides what each column means; the activity parsed into codes
    activity = {config.activity_column or _CSV_DEFAULTS["activity"]: pl.Categorical}
    frame = pl.concat(
        [pl.read_csv(p, infer_schema=False, schema_overrides=activity) for p in paths], how="diagonal_relaxed"
    )
    return _mapped(frame, config, defaults=_CSV_DEFAULTS)


def from_xes(config: EventLogConfig) -> tuple[pl.DataFrame, pl.DataFrame]:
    import pm4py  # heavy; only when an XES log is configured

    if not config.path or not Path(config.path).is_file():
        raise EventLogError(
            f"XES file not found: {config.path!r}; set `path` of `process_event_log` to a .xes or "
            ".xes.gz file"
        )
    frame = pl.from_pandas(pm4py.read_xes(config.path, return_legacy_log_object=False))
    # pm4py already parsed the timestamps; text for the rest keeps the mapping uniform
    frame = frame.with_columns(pl.exclude(pl.Datetime).cast(pl.String))
    return _mapped(frame, config, defaults=_XES_DEFAULTS)


def _csv_paths(path: str | None) -> list[Path]:
    if not path:
        raise EventLogError(
            "source `csv` needs `path`: set it to a CSV file, a folder of .csv files or a glob"
        )
    target = Path(path)
    if target.is_dir():
        found = sorted(target.glob("*.csv"))
    elif target.is_file():
        found = [target]
    else:
        found = [Path(p) for p in sorted(glob.glob(path))]
    if not found:
        raise EventLogError(
            f"no CSV files at {path!r} (resolved from {Path.cwd()}); set `path` of `process_event_log` "
            "to an existing file, a folder of .csv files or a glob such as /data/log/*.csv"
        )
    return found


def check_columns(columns: list[str], config: EventLogConfig, defaults: dict[str, str]) -> None:
    """Every configured column is in the log, or an error names it, the option and the choices."""
    unknown = sorted(set(config.case_attribute_columns) - set(CASE_ATTRIBUTES))
    if unknown:
        raise EventLogError(
            f"unknown case attributes {unknown} in `case_attribute_columns`; the keys can be any of "
            f"{list(CASE_ATTRIBUTES)} (each mapped to a column of the log)"
        )
    wanted = [
        ("case_id_column", config.case_id_column or defaults["case_id"]),
        ("activity_column", config.activity_column or defaults["activity"]),
        ("timestamp_column", config.timestamp_column or defaults["timestamp"]),
        *(("lifecycle_column", c) for c in [config.lifecycle_column] if c),
        *((f"case_attribute_columns.{k}", c) for k, c in config.case_attribute_columns.items()),
    ]
    missing = [f"{option} = {column!r}" for option, column in wanted if column not in columns]
    if missing:
        raise EventLogError(
            f"columns not in the log: {', '.join(missing)}; the log's columns are {columns}. "
            f"Set these options of `process_event_log` to the log's column names "
            f"(unset options default to {[defaults[k] for k in ('case_id', 'activity', 'timestamp')]})."
        )


def _mapped(
    frame: pl.DataFrame, config: EventLogConfig, defaults: dict[str, str]
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """Apply the column mapping: rename to the normalised names, parse timestamps, split off cases."""
    mapping = {
        "case_id": config.case_id_column or defaults["case_id"],
        "activity": config.activity_column or defaults["activity"],
        "event_ts": config.timestamp_column or defaults["timestamp"],
    }
    check_columns(frame.columns, config, defaults)
    resource = config.resource_column or defaults["resource"]
    lifecycle = config.lifecycle_column or defaults["lifecycle"]
    frame = frame.with_row_index("source_order")
    ts = frame[mapping["event_ts"]]
    if ts.dtype == pl.String:
        # eager on the Series: polars infers formats with an offset ("...Z", "+02:00") only there
        text = ts
        try:
            ts = ts.str.to_datetime(format=config.timestamp_format, time_unit="us", strict=False)
        except pl.exceptions.ComputeError:  # no format could be inferred
            ts = pl.Series([None] * text.len(), dtype=pl.Datetime("us"))
        if text.null_count() < text.len() and ts.null_count() == ts.len():
            sample = text.drop_nulls()[0]
            raise EventLogError(
                f"no value of timestamp column {mapping['event_ts']!r} parses (e.g. {sample!r}) with "
                f"timestamp_format {config.timestamp_format or 'unset (ISO 8601)'}; set "
                '`timestamp_format` to its strftime format, e.g. "%d.%m.%Y %H:%M"'
            )
    if ts.dtype.time_zone:  # type: ignore[union-attr]
        ts = ts.dt.convert_time_zone("UTC")
    else:
        ts = ts.dt.replace_time_zone(config.timestamp_time_zone).dt.convert_time_zone("UTC")
    events = frame.select(
        "source_order",
        case_id=pl.col(mapping["case_id"]).cast(pl.String),
        activity=pl.col(mapping["activity"]).cast(pl.Categorical),
        event_ts=ts.dt.cast_time_unit("us"),
        resource=pl.col(resource).cast(pl.String) if resource in frame.columns else pl.lit(None, pl.String),
        lifecycle=pl.col(lifecycle).cast(pl.String)
        if lifecycle in frame.columns
        else pl.lit(None, pl.String),
    )
    cases = pl.DataFrame(schema=_CASE_SCHEMA)
    if config.case_attribute_columns:
        attrs = frame.group_by(pl.col(mapping["case_id"]).cast(pl.String).alias("case_id")).agg(
            pl.col(col).drop_nulls().first().alias(name)
            for name, col in config.case_attribute_columns.items()
        )
        cases = attrs.select(
            pl.col(name).cast(dtype, strict=False)
            if name in attrs.columns
            else pl.lit(None, dtype).alias(name)
            for name, dtype in _CASE_SCHEMA.items()
        )
    return events, cases


def normalise(events: pl.DataFrame, lifecycle: Literal["complete", "all"] = "complete") -> pl.DataFrame:
    """Sort into case order and number the events; rows without case, activity or time are dropped.

    `events` has `case_id`, `activity`, `event_ts`, `resource`, `source_order` (the tie-break
    for equal timestamps: a stable sort on the log's position) and optionally `lifecycle` (the
    transition; see `EventLogConfig.lifecycle`); `load_event_log` reports how many rows were dropped.

    `activity` comes out `Categorical`: the readers parse it as one (casting text afterwards costs
    more than the DFG saves by grouping on its codes); a text column is cast here.
    """
    ordered = (
        events.drop_nulls(["case_id", "activity", "event_ts"])
        .with_columns(pl.col("activity").cast(pl.Categorical))
        .sort("case_id", "event_ts", "source_order")
    )
    if (
        "lifecycle" in ordered.columns
        and lifecycle == "complete"
        and ordered["lifecycle"].null_count() < ordered.height
    ):
        ordered = _paired_with_starts(ordered)
    else:
        ordered = ordered.with_columns(start_ts=pl.lit(None, pl.Datetime("us", "UTC")))
    return ordered.with_columns(event_index=pl.int_range(pl.len(), dtype=pl.Int32).over("case_id")).select(
        "case_id", "event_index", "activity", "event_ts", "resource", "start_ts"
    )


def _paired_with_starts(ordered: pl.DataFrame) -> pl.DataFrame:
    """The complete events (and those without a transition), each with the time of the earliest
    unmatched `start` of its activity before it in its case (pm4py's `interval_lifecycle.to_interval`);
    null where there is none. Other transitions (schedule, suspend, ...) are left out."""
    transition = ordered["lifecycle"].str.to_lowercase().fill_null("complete")
    open_starts: dict[tuple[str, str], deque] = {}
    start_ts = []
    for case, activity, kind, ts in zip(
        ordered["case_id"], ordered["activity"], transition, ordered["event_ts"], strict=True
    ):
        if kind == "start":
            open_starts.setdefault((case, activity), deque()).append(ts)
            start_ts.append(None)
        elif kind == "complete":
            waiting = open_starts.get((case, activity))
            start_ts.append(waiting.popleft() if waiting else None)
        else:
            start_ts.append(None)
    return ordered.with_columns(start_ts=pl.Series(start_ts, dtype=pl.Datetime("us", "UTC"))).filter(
        transition == "complete"
    )


def case_table(events: pl.DataFrame, attributes: pl.DataFrame) -> pl.DataFrame:
    """One row per case of the log: attributes (null when unknown) and first/last event."""
    spans = events.group_by("case_id").agg(
        events=pl.len().cast(pl.Int32),
        started_at=pl.col("event_ts").min(),
        ended_at=pl.col("event_ts").max(),
    )
    return (
        spans.join(attributes, on="case_id", how="left")
        .with_columns(
            duration_hours=(pl.col("ended_at") - pl.col("started_at")).dt.total_microseconds() / 3.6e9
        )
        .select(name for name, _ in CASE_COLUMNS)
        .sort("case_id")
    )


def load_event_log(
    conn: psycopg.Connection, config: EventLogConfig
) -> tuple[pl.DataFrame, pl.DataFrame, int]:
    """(events, cases, rows dropped for a missing case id, activity or timestamp) from the source."""
    readers = {
        "silver": lambda: from_silver(conn),
        "csv": lambda: from_csv(config),
        "xes": lambda: from_xes(config),
    }
    raw, attributes = readers[config.source]()
    incomplete = raw.select(
        pl.any_horizontal(pl.col("case_id", "activity", "event_ts").is_null()).sum()
    ).item()
    events = normalise(raw, config.lifecycle)
    return events, case_table(events, attributes), incomplete
