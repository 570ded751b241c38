"""Endpoint groups. Each module's `install(app, ...)` adds its routes; `api/app.py` calls them.

A group over its own tables (search, process results, quality, agent answers) lists those tables at the
top of its module, declares its scope in `api.keys.SCOPES`, and is installed in `create_app` (`api/app.py`).
"""
