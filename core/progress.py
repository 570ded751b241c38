"""Progress of long steps as plain log lines: the Dagster UI shows them in the step's log and
`assay run` echoes them as they are stored (it picks them out by their label)."""

import time
from collections.abc import Callable

from tqdm import tqdm

LABELS = ("alignments", "embeddings")
_FORMAT = "{desc}: {n:,}/{total:,} {unit} ({percentage:.0f} %), {rate} {unit}/s, ETA {remaining}"


def prefix(label: str) -> str:
    """The start of a progress line for `label` (one of LABELS)."""
    if label not in LABELS:
        raise ValueError(f"unknown progress label {label!r}; add it to LABELS")
    return f"{label}: "


def note(label: str, text: str) -> str:
    """A progress line that says what a step is doing where it has nothing to count (loading a
    model, building an index)."""
    return prefix(label) + text


def is_progress(message: str) -> bool:
    return message.startswith(tuple(prefix(label) for label in LABELS))


class Progress:
    """Counts work done of a known total; emits a line (done/total, rate, ETA via tqdm's meter) at
    most every `every_s` seconds, and always when the work is done."""

    def __init__(self, label: str, total: int, unit: str, emit: Callable[[str], None], every_s: float = 10.0):
        self.desc, self.total, self.unit = prefix(label)[:-2], total, unit
        self.emit, self.every_s = emit, every_s
        self.done = 0
        self.started = self._last = time.perf_counter()

    def advance(self, n: int) -> None:
        self.done += n
        now = time.perf_counter()
        if now - self._last >= self.every_s or self.done >= self.total:
            self._last = now
            self.emit(self.line(now - self.started))

    def line(self, elapsed: float) -> str:
        # tqdm's own rate reads "1498.54docs/s"; ours has a thousands separator like the counts, and
        # two significant digits below 10 (alignments can take seconds each)
        rate = self.done / elapsed if elapsed > 0 else 0.0
        shown = f"{rate:,.0f}" if rate >= 10 else f"{rate:.2g}"
        return tqdm.format_meter(
            self.done,
            self.total,
            elapsed,
            prefix=self.desc,
            unit=self.unit,
            bar_format=_FORMAT.replace("{rate}", shown),
        )
