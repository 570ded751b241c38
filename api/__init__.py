"""The read-only FastAPI service over gold marts, agent answers, search and process results."""
