"""The roof: the one Dagster `Definitions`, sensors and jobs, and the `assay` command line."""
