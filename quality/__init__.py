"""Data-quality scoring, drift and profile checks, Great Expectations suites and the quality store:
what dbt tests cannot express."""
