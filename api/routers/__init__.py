"""Endpoint groups. Each module builds one APIRouter; `api/app.py` includes them.

A group over its own tables (search, process results, quality, agent answers) lists those tables at the
top of its module, declares its scope in `api.keys.SCOPES`, and is added to `ROUTERS` in `api/app.py`.
"""
