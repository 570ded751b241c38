"""Where landing files are and how they are named: one folder per source under `$ASSAY_HOME/landing`,
and for the daily-partitioned sources (transactions, events) the day in the file's name
(`transactions-2025-03-14.jsonl`). The sensor, the bronze loader and the CLI all read these rules here.
"""

import datetime as dt
import re
from pathlib import Path

from assay.core.settings import get_settings

SOURCES = ("vendors", "employees", "transactions", "events")
FILE_SUFFIXES = {".csv": "csv", ".jsonl": "jsonl", ".ndjson": "jsonl", ".parquet": "parquet"}
PARTITIONED_SOURCES = ("transactions", "events")
EXPECTED_NAME = "<name>-YYYY-MM-DD.<csv|jsonl|ndjson|parquet>, e.g. transactions-2025-03-14.jsonl"
_DAY_IN_NAME = re.compile(r"(\d{4})-(\d{2})-(\d{2})(?!.*\d{4}-\d{2}-\d{2})")  # the last date in the name


def first_day() -> dt.date:
    """The first day of the daily partitions (`ASSAY_PARTITIONS_START`)."""
    return get_settings().partitions_start


def file_day(path: Path) -> dt.date | None:
    """The day in a landing file's name, or None when it has no (valid) date."""
    match = _DAY_IN_NAME.search(path.name)
    if not match:
        return None
    try:
        return dt.date(*(int(part) for part in match.groups()))
    except ValueError:  # 2025-02-30
        return None


def landing_files(landing_dir: Path, source: str) -> list[Path]:
    folder = landing_dir / source
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in FILE_SUFFIXES)


def files_without_partition(landing_dir: Path, first: dt.date) -> list[str]:
    """Landing files of partitioned sources that no daily partition loads: no day in the name, or a
    day before the first partition. Reported (run output, asset metadata, log), never skipped silently."""
    return [
        path.relative_to(landing_dir).as_posix()
        for source in PARTITIONED_SOURCES
        for path in landing_files(landing_dir, source)
        if (day := file_day(path)) is None or day < first
    ]


def without_partition_message(rel: str) -> str:
    return (
        f"{rel}: not loaded: the file name has no day of a partition (from "
        f"{first_day()}); name it {EXPECTED_NAME}"
    )


def files_not_read(landing_dir: Path) -> list[str]:
    """Files in a source's landing folder that bronze does not read (another suffix: `.json`, `.tsv`,
    `.xlsx`, `.csv.gz`). Reported like `files_without_partition`, never skipped silently; hidden files
    (`.DS_Store`, editors' temporary files) are not a user's data."""
    return [
        path.relative_to(landing_dir).as_posix()
        for source in SOURCES
        if (landing_dir / source).is_dir()
        for path in sorted((landing_dir / source).iterdir())
        if path.is_file() and not path.name.startswith(".") and path.suffix.lower() not in FILE_SUFFIXES
    ]


def not_read_message(rel: str) -> str:
    return (
        f"{rel}: not loaded: bronze reads {', '.join(FILE_SUFFIXES)} files (gzip-compressed too, under those"
        " names); save it as one of them (a JSON array as JSON Lines, a spreadsheet as CSV)"
    )


def not_loaded_messages(landing_dir: Path, first: dt.date) -> list[str]:
    """Why each landing file bronze will not load is left out (no day of a partition, a suffix bronze
    does not read): the warnings `assay run` and the landing sensor print."""
    return [
        *map(without_partition_message, files_without_partition(landing_dir, first)),
        *map(not_read_message, files_not_read(landing_dir)),
    ]
