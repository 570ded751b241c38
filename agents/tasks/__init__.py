"""Agent tasks, one file each: every `Task` subclass in this package is registered by its name.

Adding a task is adding a file here; it becomes a Dagster asset in the `agents` group.
"""

from __future__ import annotations

import importlib
import pkgutil

from assay.agents.tasks.base import Final, OutputError, RunInput, RunState, Task, ToolCall


def _discover() -> dict[str, type[Task]]:
    found: dict[str, type[Task]] = {}
    for module in pkgutil.iter_modules(__path__):
        if module.name != "base":
            importlib.import_module(f"{__name__}.{module.name}")
    stack = list(Task.__subclasses__())
    while stack:
        cls = stack.pop()
        stack.extend(cls.__subclasses__())
        if getattr(cls, "name", None) and cls.__module__.startswith(__name__ + "."):
            found[cls.name] = cls
    return dict(sorted(found.items()))


TASKS: dict[str, type[Task]] = _discover()

__all__ = ["TASKS", "Final", "OutputError", "RunInput", "RunState", "Task", "ToolCall"]
