"""The read-only HTTP API (FastAPI): gold marts, answers, search, process results, quality, health,
metrics; `create_app` is in `assay.api.app`, each endpoint group a module of `assay.api.routers`."""
