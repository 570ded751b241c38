"""The ground layer: settings, the database resource, model loading, retries, schema migrations.

Imports nothing of assay above it; every other layer builds on it (docs/architecture.md).
"""
