"""Quality thresholds, read from the environment (`ASSAY_DQ_*`) when a check runs, never at import.

| variable | default | meaning |
| --- | --- | --- |
| `ASSAY_DQ_SILVER_MIN_SCORE` | 0.95 | overall DQ score a silver table needs, or gold does not build |
| `ASSAY_DQ_GOLD_MIN_SCORE` | 1.0 | overall DQ score a gold table needs, or platinum does not build |
| `ASSAY_DQ_MAX_REJECT_RATE` | 0.02 | share of a source's bronze rows one reject reason class may take |
| `ASSAY_DQ_REJECT_RATE_LIMITS` | `{}` | per-class overrides as JSON, e.g. `{"duplicate": 0.05}` |
| `ASSAY_DQ_MIN_REJECTED_ROWS` | 10 | silver gates fail on a rate only beyond this many rows |
| `ASSAY_DQ_MAX_ROW_COUNT_CHANGE` | 0.5 | allowed change of a table's rows against the previous run (WARN) |
| `ASSAY_DQ_SAMPLE_ROWS` | 5 | failing rows shown per check |
"""

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class QualitySettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="ASSAY_DQ_", extra="ignore")

    silver_min_score: float = Field(0.95, ge=0, le=1)
    gold_min_score: float = Field(1.0, ge=0, le=1)
    max_reject_rate: float = Field(0.02, ge=0, le=1)
    reject_rate_limits: dict[str, float] = Field(default_factory=dict)
    min_rejected_rows: int = Field(10, ge=0)
    """The absolute floor beside every rate: a tiny source is not blocked by a handful of bad rows."""
    max_row_count_change: float = Field(0.5, ge=0)
    sample_rows: int = Field(5, ge=0, le=100)

    def min_score(self, layer: str) -> float:
        return {"silver": self.silver_min_score, "gold": self.gold_min_score}[layer]

    def reject_rate_limit(self, reason_class: str) -> float:
        return self.reject_rate_limits.get(reason_class, self.max_reject_rate)


def get_quality_settings() -> QualitySettings:
    return QualitySettings()
