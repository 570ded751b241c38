"""Python assets: sample data, bronze ingestion and the dbt assets."""
