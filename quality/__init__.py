"""Great Expectations suites, data-quality scoring and asset checks that are not dbt tests."""
