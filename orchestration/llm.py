"""The LLM backend as a Dagster resource (key `llm`).

Fields left empty follow the environment (`ASSAY_LLM_BACKEND`, `ASSAY_LLM_MODEL`, `ASSAY_DEVICE`,
see `orchestration/settings.py`). The models themselves are loaded in one place,
`agents/backends/` (once per process).
"""

from dagster import ConfigurableResource

from agents.backends import Backend, get_backend


class LLMResource(ConfigurableResource):
    backend: str | None = None
    model: str | None = None
    device: str | None = None
    batch_size: int | None = None
    models_dir: str | None = None

    def get(self) -> Backend:
        return get_backend(
            backend=self.backend,
            model=self.model,
            device=self.device,
            batch_size=self.batch_size,
            models_dir=self.models_dir,
        )
