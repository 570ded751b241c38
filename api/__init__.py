"""The read-only HTTP API (FastAPI): gold marts, health, metrics; `create_app` is in `api.app`.

Endpoint groups over other tables (agent answers, search, process results, quality) plug in as
modules of `api.routers` (see README "Read API").
"""
