"""The Dagster entry point, shared resources, settings and the `assay` command line."""
