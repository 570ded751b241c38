"""Batched LLM agent runs over gold and platinum data: tasks, the lockstep runner, tools, backends,
evaluation."""
