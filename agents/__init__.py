"""Batched LLM agent runs over gold and platinum data (tasks, runner, tools, backends)."""
