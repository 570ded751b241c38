"""Dagster wiring: the assets and asset checks of every layer (bronze, dbt, embeddings, process
mining, agents, quality)."""
