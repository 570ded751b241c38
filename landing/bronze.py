"""Bronze: landing files -> `bronze.<source>`, one row per source record, nothing dropped.

Each file is read with polars, staged with COPY and inserted in one set-based statement, inside one
transaction together with its entry in `bronze.load_batches`. So a crash leaves no half-loaded file,
and a file whose SHA-256 is already in the ledger is skipped (loading twice adds nothing). A row is
identified by its batch and line (`batch_id`, `line_number`); no per-row hash is stored (0022).
A file loaded again under the same name with new content supersedes its earlier version, and a
file can be retracted (`retract_file`): the rows of both stay in bronze for audit, and silver reads
only the active ones through the `bronze.<source>_active` views.
Postgres itself decides whether a payload is valid JSON (`pg_input_is_valid`), so a line it would
refuse becomes a row with `parse_error` set instead of failing the load.

The ledger, the source tables and their active views are made by the migrations
(`core/migrations/0001-bronze.sql`, `0008-bronze-retract.sql`, `0022-bronze-no-row-hash.sql`).
"""

import codecs
import csv
import datetime as dt
import gzip
import hashlib
import io
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import polars as pl
import psycopg
from psycopg import sql

from assay.core.database import PostgresResource
from assay.landing.files import FILE_SUFFIXES, PARTITIONED_SOURCES, file_day, landing_files

# Fast path: lines polars already parsed as JSON objects are copied straight into the table, so
# Postgres parses each payload once (as JSONB input). Every other line goes through this staged
# insert, where Postgres itself decides and explains: it is the authority on what JSONB accepts.
# The staged lines (few in a normal file) travel as bound arrays: no temporary table per file.
INSERT_FROM_STAGE = """
insert into bronze.{table} (batch_id, source_file, line_number, record, raw_text, parse_error, partition_date)
select %(batch_id)s, %(source_file)s, s.line_number, r.record,
       case when r.record is null then s.raw_text end,
       case
           when r.record is not null then null
           when s.parse_error is not null then s.parse_error
           when p.json is null then 'invalid JSON: ' || (pg_input_error_info(s.payload, 'jsonb')).message
           when jsonb_typeof(p.json) = 'array'
               then 'not a JSON object but an array: land one JSON object per line (JSON Lines)'
           else 'not a JSON object'
       end,
       %(partition_date)s
from unnest(%(line_number)s::integer[], %(payload)s::text[], %(raw_text)s::text[], %(parse_error)s::text[])
    as s (line_number, payload, raw_text, parse_error)
cross join lateral (
    select case when s.parse_error is null and pg_input_is_valid(s.payload, 'jsonb') then s.payload::jsonb end
) as p (json)
cross join lateral (
    select case when jsonb_typeof(p.json) = 'object' then p.json end
) as r (record)
"""


@dataclass
class FileLoad:
    source_file: str
    rows: int
    parse_errors: int
    skipped: bool
    seconds: float
    batch_id: uuid.UUID | None = None
    superseded_rows: int = 0  # rows of earlier versions of this file that this load replaced
    reactivated: bool = False  # an earlier version came back: its rows are active again
    copy_of: str = ""  # the file whose identical content (with rows) was loaded before: this one adds nothing
    copy_inactive: str = ""  # that load's status when it is no longer active (superseded, retracted)

    @property
    def note(self) -> str:
        """What a load did beyond adding rows, for the run's log and metadata."""
        if self.copy_of:
            if self.copy_inactive:  # a content loads once (unique in the ledger), so its rows stay out
                return (
                    f"{self.source_file}: not loaded: the same content as {self.copy_of}, loaded before and "
                    f"{self.copy_inactive} since, so these rows are not in silver; a content loads once: "
                    "change the file to load it, or remove it"
                )
            return (
                f"{self.source_file}: not loaded: the same content as {self.copy_of}, loaded before; "
                "remove the copy"
            )
        if self.reactivated:
            return f"{self.source_file}: an earlier version is back and active again; the newer is superseded"
        if self.superseded_rows:
            return (
                f"{self.source_file}: a new version under the same name; it supersedes the "
                f"{self.superseded_rows} rows of the earlier one (kept in bronze, out of silver)"
            )
        return ""


def stage_frame(path: Path, data: bytes | None = None) -> pl.DataFrame:
    """Turn one landing file into rows of (line_number, payload, raw_text, parse_error).

    `data` is the file's content when the caller has read it already (the bytes it hashed).
    """
    kind = FILE_SUFFIXES[path.suffix.lower()]
    data = path.read_bytes() if data is None else data
    if kind == "parquet":
        return _parquet_rows(data)
    lines = _decoded_lines(_unwrapped(data))
    return _jsonl_rows(lines) if kind == "jsonl" else _csv_rows(lines)


def _unwrapped(data: bytes) -> bytes:
    """The text of a file other systems wrapped: gzip-compressed (under a .csv or .jsonl name), UTF-16
    with its byte order mark (Excel's "Unicode text"), a UTF-8 byte order mark. Each is told by its
    leading bytes, never guessed; a wrapper that does not unwrap leaves the bytes to the line rules."""
    try:
        if data.startswith(b"\x1f\x8b"):
            data = gzip.decompress(data)
        if data.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
            data = data.decode("utf-16").encode("utf-8")
    except (OSError, EOFError, UnicodeDecodeError):  # truncated gzip, odd UTF-16 byte count
        return data
    return data.removeprefix(codecs.BOM_UTF8)


def _decoded_lines(data: bytes) -> pl.DataFrame:
    """Physical lines as text with 1-based line numbers; undecodable lines carry an error.

    The whole-file decode is the fast path; only a file with bad bytes is decoded line by line.
    """
    try:
        if b"\x00" in data:
            raise UnicodeDecodeError("utf-8", b"", 0, 0, "NUL byte")
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return _decoded_line_by_line(data)
    # split by polars, not into a list of Python strings: that would hold the GIL, which the thread
    # writing the previous file to Postgres needs between its round trips
    if "\r" in text and "\n" not in text:
        text = text.replace("\r", "\n")  # old Mac line ends (Excel's "CSV (Macintosh)")
    lines = pl.Series("text", [text], dtype=pl.String).str.split("\n").explode()
    if text == "" or text.endswith("\n"):
        lines = lines.head(-1)  # a final newline ends the last line, it does not start another
    return _numbered(lines).with_columns(pl.lit(None, dtype=pl.String).alias("error"))


def _decoded_line_by_line(data: bytes) -> pl.DataFrame:
    """`_decoded_lines` for a file with bad bytes: each line decoded alone, the bad ones with an error."""
    raw_lines = data.split(b"\n")
    if raw_lines and raw_lines[-1] == b"":
        raw_lines.pop()  # a final newline ends the last line, it does not start another
    texts: list[str] = []
    errors: list[str | None] = []
    for raw in raw_lines:
        try:
            if b"\x00" in raw:
                raise ValueError("line contains a NUL byte")
            texts.append(raw.decode("utf-8"))
            errors.append(None)
        except ValueError as exc:  # UnicodeDecodeError is a ValueError too
            reason = (
                f"not valid UTF-8 ({exc}): save the file as UTF-8"
                if isinstance(exc, UnicodeDecodeError)
                else f"{exc} (UTF-16 without a byte order mark, or not text): save the file as UTF-8"
            )
            texts.append(raw.decode("utf-8", errors="replace").replace("\x00", "\\x00"))
            errors.append(reason)
    frame = _numbered(pl.Series("text", texts, dtype=pl.String))
    return frame.with_columns(pl.Series("error", errors, dtype=pl.String))


def _numbered(lines: pl.Series) -> pl.DataFrame:
    """(line_number from 1, text without a trailing carriage return)."""
    frame = lines.to_frame().with_row_index("line_number", offset=1)
    return frame.with_columns(pl.col("text").str.strip_suffix("\r"), pl.col("line_number").cast(pl.Int32))


def _jsonl_rows(lines: pl.DataFrame) -> pl.DataFrame:
    # Blank lines hold no record (a common trailing artefact); every other line becomes a row.
    lines = lines.filter(pl.col("text").str.strip_chars() != "")
    return lines.select(
        "line_number",
        pl.col("text").alias("payload"),
        pl.col("text").alias("raw_text"),
        pl.col("error").alias("parse_error"),
    )


def _csv_rows(lines: pl.DataFrame) -> pl.DataFrame:
    """CSV lines -> JSON objects keyed by the header; a line with the wrong field count is an error.

    The header is the first non-blank line, its names without surrounding spaces; its separator is
    `,`, or `;` / tab / `|` when it has no comma (Excel in locales with a decimal comma writes `;`).
    A header that names a column twice, or is not CSV, makes every line an error that says so: a
    record keyed by it would lose a value (unnamed columns, Excel's trailing separators, are not
    names: silver ignores them).
    Lines without quotes split with polars; the few quoted ones go through the csv module.
    Quoted fields that span lines are not supported: each physical line is one record.
    """
    lines = lines.filter(pl.col("text").str.strip_chars() != "")
    if lines.height == 0:
        return pl.DataFrame(schema=_STAGE_SCHEMA)
    header_line = lines["text"][0]
    separator = next((s for s in ",;\t|" if s in header_line), ",")
    header, header_error = _csv_fields(header_line, separator)
    header = [name.strip() for name in header]  # ` vendor_id ` is the column vendor_id
    if header_error:
        header_error = f"the header line is not CSV ({header_error}); fix line {lines['line_number'][0]}"
    elif twice := sorted({name for name in header if name and header.count(name) > 1}):
        header_error = f"the header names column {twice[0]!r} twice; rename one and land the file again"
    body = lines.slice(1)
    quoted = body["text"].str.contains('"', literal=True)
    plain = body.filter(~quoted).with_columns(fields=pl.col("text").str.split(separator))
    tricky = body.filter(quoted)
    parsed = [_csv_fields(t, separator) for t in tricky["text"]]
    tricky = tricky.with_columns(
        pl.Series("fields", [p[0] for p in parsed], dtype=pl.List(pl.String)),
        pl.coalesce("error", pl.Series([p[1] for p in parsed], dtype=pl.String)).alias("error"),
    )
    rows = pl.concat([plain, tricky]).sort("line_number")
    if header_error:
        rows = rows.with_columns(error=pl.coalesce("error", pl.lit(header_error)))
    width = len(header)
    n_fields = pl.col("fields").list.len()
    bad = pl.col("error").is_not_null() | (n_fields != width)
    good = rows.filter(~bad).with_columns(
        payload=pl.col("fields").list.to_struct(fields=header).struct.json_encode()
    )
    failed = rows.filter(bad).with_columns(
        payload=pl.lit(None, dtype=pl.String),
        error=pl.coalesce(
            "error",
            # an odd number of quotes: the line ends inside a quoted field
            pl.when(pl.col("text").str.count_matches('"', literal=True) % 2 == 1).then(pl.lit(_SPANNING)),
            pl.format("expected {} fields, found {}", pl.lit(width), n_fields.cast(pl.String)),
        ),
    )
    return (
        pl.concat([good, failed])
        .sort("line_number")
        .select(
            "line_number", "payload", pl.col("text").alias("raw_text"), pl.col("error").alias("parse_error")
        )
    )


_SPANNING = (
    "a quoted field runs past the end of the line (a CSV record is one line here): export without "
    "line breaks inside fields, or as JSON Lines"
)


def _csv_fields(line: str, separator: str) -> tuple[list[str], str | None]:
    """One CSV line's fields, or the csv module's error (a stray carriage return, say)."""
    try:
        return next(csv.reader([line], delimiter=separator), []), None
    except csv.Error as exc:
        return [], f"not CSV: {exc}"


def _parquet_rows(data: bytes) -> pl.DataFrame:
    try:
        frame = pl.read_parquet(io.BytesIO(data))
    except pl.exceptions.PolarsError as exc:  # truncated, or not Parquet: one row that says so
        error = f"not a readable Parquet file ({exc}): land it again whole, or as CSV or JSON Lines"
        return pl.DataFrame(
            {"line_number": [1], "payload": [None], "raw_text": [error], "parse_error": [error]},
            schema=_STAGE_SCHEMA,
        )
    payload = frame.select(pl.struct(pl.all()).struct.json_encode().alias("payload"))
    return payload.with_row_index("line_number", offset=1).select(
        pl.col("line_number").cast(pl.Int32),
        "payload",
        pl.col("payload").alias("raw_text"),
        pl.lit(None, dtype=pl.String).alias("parse_error"),
    )


_STAGE_SCHEMA = {
    "line_number": pl.Int32,
    "payload": pl.String,
    "raw_text": pl.String,
    "parse_error": pl.String,
}


@dataclass
class PreparedFile:
    path: Path
    source_file: str
    file_hash: str
    size_bytes: int
    frame: pl.DataFrame | None  # None when the file was already loaded
    day: dt.date | None  # the partition the rows belong to (partitioned sources only)
    batch_id: uuid.UUID
    # the first split (`_direct_candidates`), made here in the worker thread: COPY data of the
    # direct lines, and the rest for the staged insert
    direct: bytes = b""
    rest: pl.DataFrame | None = None


def prepare_file(path: Path, landing_dir: Path, loaded_hashes: set[str], source: str) -> PreparedFile:
    """The client-side half of a load: read, hash, parse and split (no database access)."""
    data = path.read_bytes()
    file_hash = hashlib.sha256(data).hexdigest()
    rel = path.relative_to(landing_dir).as_posix()
    frame = None if file_hash in loaded_hashes else stage_frame(path, data)
    day = file_day(path) if source in PARTITIONED_SOURCES else None
    prepared = PreparedFile(path, rel, file_hash, len(data), frame, day, uuid.uuid4())
    if frame is not None:
        prepared.direct, prepared.rest = _split(prepared, _direct_candidates(path)[0])
    return prepared


def _split(prepared: PreparedFile, candidate: pl.Expr) -> tuple[bytes, pl.DataFrame]:
    """(COPY data of the lines `candidate` picks, the other lines)."""
    frame = prepared.frame
    assert frame is not None
    mask = frame.select(candidate).to_series()
    payload = _direct_payload(frame.filter(mask), prepared.batch_id, prepared.source_file, prepared.day)
    return payload, frame.filter(~mask)


class _Refused(Exception):
    """Postgres refused a line of the direct COPY (e.g. a \\u0000 escape): try a stricter split."""


def load_files(conn: psycopg.Connection, source: str, paths: list[Path], landing_dir: Path) -> list[FileLoad]:
    """Load files one transaction each, parsing the next file while Postgres ingests this one.

    polars releases the GIL, so on two cores the client's parsing and the server's COPY overlap.
    `conn` must be in autocommit mode, or each "transaction" is only a savepoint of the caller's.
    """
    loaded = {
        row[0]
        for row in conn.execute("select file_hash from bronze.load_batches where source = %s", [source])
    }
    loads: list[FileLoad] = []
    with ThreadPoolExecutor(max_workers=1) as pool:
        upcoming = pool.submit(prepare_file, paths[0], landing_dir, loaded, source) if paths else None
        for index in range(len(paths)):
            started = time.perf_counter()
            prepared = upcoming.result()
            if index + 1 < len(paths):
                upcoming = pool.submit(prepare_file, paths[index + 1], landing_dir, loaded, source)
            loads.append(_write_file(conn, source, prepared, started))
    return loads


def load_file(conn: psycopg.Connection, source: str, path: Path, landing_dir: Path) -> FileLoad:
    """Load one file in one transaction; skip it when its content is already loaded."""
    return load_files(conn, source, [path], landing_dir)[0]


def _write_file(conn: psycopg.Connection, source: str, prepared: PreparedFile, started: float) -> FileLoad:
    """One file in one transaction. If Postgres refuses a line of the direct COPY, the transaction
    is rolled back and the file loaded again with the next, stricter split, the last of which stages
    every line (a savepoint would cost two round trips on every file for this rare case)."""
    stricter = _direct_candidates(prepared.path)[1:]
    direct, rest = prepared.direct, prepared.rest
    while True:
        try:
            return _write_once(conn, source, prepared, direct, rest, started)
        except _Refused:
            if stricter:
                direct, rest = _split(prepared, stricter.pop(0))
            else:  # every split refused: Postgres judges every line
                direct, rest = b"", prepared.frame


def _write_once(
    conn: psycopg.Connection,
    source: str,
    prepared: PreparedFile,
    direct: bytes,
    rest: pl.DataFrame | None,
    started: float,
) -> FileLoad:
    rel, table, batch_id = prepared.source_file, sql.Identifier(source), prepared.batch_id
    with conn.transaction():
        # Serialise loaders of the same source so two runs cannot both load a new file; the ledger
        # is checked again under the lock because another run may have loaded it meanwhile.
        # The lock is on the table itself, which the read-only role cannot reach (an advisory lock
        # could be taken by any role, a reader holding it would stop the loader).
        with conn.pipeline():  # one round trip for all three
            # A crash may lose the last commits whole (never a part of one): their files are not in
            # the ledger, so the next run loads them again. Not waiting for the WAL flush is safe.
            conn.execute("set local synchronous_commit = off")
            conn.execute(sql.SQL("lock table bronze.{} in share row exclusive mode").format(table))
            seen = conn.execute(
                "select batch_id, source_file, superseded_by, retracted_at, row_count"
                " from bronze.load_batches where source = %s and file_hash = %s",
                [source, prepared.file_hash],
            ).fetchone()
        if seen and seen[1] == rel and seen[2] is not None and seen[3] is None:
            # a file put back to a version loaded before: that version is the file again
            conn.execute("update bronze.load_batches set superseded_by = null where batch_id = %s", [seen[0]])
            _supersede(conn, source, rel, seen[0])
            return FileLoad(rel, 0, 0, True, time.perf_counter() - started, seen[0], reactivated=True)
        if seen or prepared.frame is None or rest is None:
            if not seen or seen[1] == rel or not seen[4]:  # unchanged, or empty like many a quiet day's
                return FileLoad(rel, 0, 0, True, time.perf_counter() - started)
            inactive = "retracted" if seen[3] is not None else "superseded" if seen[2] is not None else ""
            return FileLoad(
                rel, 0, 0, True, time.perf_counter() - started, copy_of=seen[1], copy_inactive=inactive
            )
        try:
            _copy_direct(conn, table, direct)
        except psycopg.DataError as exc:
            raise _Refused from exc  # leaves the transaction: it rolls back
        errors = _insert_staged(conn, table, rest, batch_id, rel, prepared.day)
        rows = prepared.frame.height
        with conn.pipeline():
            conn.execute(
                "insert into bronze.load_batches (batch_id, source, source_file, file_hash, size_bytes,"
                " row_count, parse_errors) values (%s, %s, %s, %s, %s, %s, %s)",
                [batch_id, source, rel, prepared.file_hash, prepared.size_bytes, rows, errors],
            )
            superseded = _supersede(conn, source, rel, batch_id)
    return FileLoad(rel, rows, errors, False, time.perf_counter() - started, batch_id, superseded)


def _supersede(conn: psycopg.Connection, source: str, rel: str, batch_id: uuid.UUID) -> int:
    """Mark the other active versions of file `rel` superseded by `batch_id`; returns their rows."""
    row = conn.execute(
        """with superseded as (
               update bronze.load_batches set superseded_by = %(batch_id)s
               where source = %(source)s and source_file = %(rel)s and batch_id <> %(batch_id)s
                 and superseded_by is null and retracted_at is null
               returning row_count)
           select coalesce(sum(row_count), 0) from superseded""",
        {"batch_id": batch_id, "source": source, "rel": rel},
    ).fetchone()
    return int(row[0])


@dataclass
class LoadedFile:
    source: str
    source_file: str
    rows: int
    parse_errors: int
    loaded_at: dt.datetime
    status: str  # active, superseded, or retracted: <reason>


def loaded_files(conn: psycopg.Connection, source: str | None = None) -> list[LoadedFile]:
    """Every file in the bronze ledger with its status, newest load last."""
    rows = conn.execute(
        """select source, source_file, row_count, parse_errors, loaded_at,
                  case when retracted_at is not null then 'retracted: ' || coalesce(retracted_reason, '')
                       when superseded_by is not null then 'superseded'
                       else 'active' end
           from bronze.load_batches where %(source)s::text is null or source = %(source)s
           order by source, source_file, loaded_at""",
        {"source": source},
    )
    return [LoadedFile(*row) for row in rows]


def retract_file(
    conn: psycopg.Connection, source_file: str, reason: str, undo: bool = False
) -> list[LoadedFile]:
    """Retract every loaded version of `source_file` (landing-relative, as in the ledger): its rows stay
    in bronze for audit and leave silver at the next run. `undo` makes them active again. Returns the
    ledger entries it changed."""
    if undo:
        statement = """update bronze.load_batches set retracted_at = null, retracted_reason = null
                       where source_file = %(file)s and retracted_at is not null"""
    else:
        statement = """update bronze.load_batches set retracted_at = now(), retracted_reason = %(reason)s
                       where source_file = %(file)s and retracted_at is null"""
    with conn.transaction():
        changed = conn.execute(
            statement
            + " returning source, source_file, row_count, parse_errors, loaded_at, %(status)s::text",
            {"file": source_file, "reason": reason, "status": "active" if undo else f"retracted: {reason}"},
        ).fetchall()
    return [LoadedFile(*row) for row in changed]


def bronze_days(conn: psycopg.Connection) -> tuple[dt.date, dt.date] | None:
    """First and last day of the files in the ledger of the daily-partitioned sources, retracted and
    superseded ones included: a run over them rebuilds every day whose rows changed status."""
    names = conn.execute(
        "select distinct source_file from bronze.load_batches where source = any(%s)",
        [list(PARTITIONED_SOURCES)],
    )
    days = [day for (name,) in names if (day := file_day(Path(name))) is not None]
    return (min(days), max(days)) if days else None


def _direct_candidates(path: Path) -> list[pl.Expr]:
    """Filters for rows to COPY straight in, cheapest first; Postgres has the last word.

    For JSON Lines the first filter only checks the shape ({...}), which catches truncated lines
    at almost no cost; if Postgres still refuses a line, polars' full JSON parse is the second.
    CSV and Parquet payloads are made by polars' JSON encoder, so they are valid by construction.
    """
    # the raw COPY below uses \x01 and \x02 as quote and delimiter; valid JSON never holds them
    ok = (
        pl.col("parse_error").is_null()
        & pl.col("payload").is_not_null()
        & ~pl.col("payload").str.contains("[\x01\x02]")
    )
    if FILE_SUFFIXES[path.suffix.lower()] != "jsonl":
        return [ok]
    text = pl.col("payload").str.strip_chars()
    shaped = ok & text.str.starts_with("{") & text.str.ends_with("}")
    return [shaped, shaped & text.str.json_path_match("$").is_not_null()]


def _direct_payload(rows: pl.DataFrame, batch_id: uuid.UUID, rel: str, day: dt.date | None) -> bytes:
    """The COPY data of the direct lines (see `_copy_direct`)."""
    if rows.height == 0:
        return b""
    out = rows.select(
        pl.lit(str(batch_id)).alias("batch_id"),
        pl.lit(rel).alias("source_file"),
        "line_number",
        # an empty unquoted field is NULL in COPY's csv format
        pl.lit(day.isoformat() if day else "").alias("partition_date"),
        "payload",
    )
    buffer = io.BytesIO()
    out.write_csv(buffer, include_header=False, separator="\x02", quote_style="never")
    return buffer.getvalue()


def _copy_direct(conn: psycopg.Connection, table: sql.Identifier, payload: bytes) -> None:
    if not payload:
        return
    # Unquoted fields with a delimiter that cannot occur: Postgres reads each payload verbatim.
    statement = sql.SQL(
        "copy bronze.{} (batch_id, source_file, line_number, partition_date, record)"
        " from stdin (format csv, delimiter e'\\x02', quote e'\\x01')"
    ).format(table)
    with conn.cursor().copy(statement) as copy:
        copy.write(payload)


def _insert_staged(
    conn: psycopg.Connection,
    table: sql.Identifier,
    rows: pl.DataFrame,
    batch_id,
    rel: str,
    day: dt.date | None,
) -> int:
    """Insert rows that need Postgres' judgement; returns how many of them failed to parse."""
    if rows.height == 0:
        return 0
    insert = sql.SQL(INSERT_FROM_STAGE).format(table=table)
    counted = sql.SQL("with inserted as ({} returning parse_error) select count(parse_error) from inserted")
    columns = {name: rows[name].to_list() for name in _STAGE_SCHEMA}
    failed = conn.execute(  # binary: the arrays' text needs no escaping
        counted.format(insert),
        {"batch_id": batch_id, "source_file": rel, "partition_date": day, **columns},
        binary=True,
    )
    return failed.fetchone()[0]


def load_source(
    postgres: PostgresResource, source: str, landing_dir: Path, days: tuple[dt.date, dt.date] | None = None
) -> list[FileLoad]:
    """Load a source's new files; for a partitioned source only the files of `days` (inclusive)."""
    paths = landing_files(landing_dir, source)
    if days is not None:
        paths = [p for p in paths if (day := file_day(p)) is not None and days[0] <= day <= days[1]]
    # autocommit: each `conn.transaction()` below is then a real transaction, one per file.
    with postgres.connect(autocommit=True) as conn:
        return load_files(conn, source, paths, landing_dir)
