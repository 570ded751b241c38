"""The asset graph: keys, groups, lineage and checks. Accidental graph changes fail here."""

from dagster import AssetKey

from assay.orchestration.definitions import defs


def _graph():
    return defs.resolve_asset_graph()


def test_keys_and_groups_follow_layers():
    graph = _graph()
    groups = {key.to_user_string(): graph.get(key).group_name for key in graph.materializable_asset_keys}
    assert groups == {
        "bronze/transactions": "bronze",
        "bronze/events": "bronze",
        "bronze/vendors": "bronze",
        "bronze/employees": "bronze",
        "silver/activities": "silver",
        "silver/categories": "silver",
        "silver/currency_rates": "silver",
        "silver/reject_reasons": "silver",
        "silver/int_transactions_checked": "silver",
        "silver/int_events_checked": "silver",
        "silver/int_vendors_checked": "silver",
        "silver/int_employees_checked": "silver",
        "silver/transactions": "silver",
        "silver/events": "silver",
        "silver/vendors": "silver",
        "silver/employees": "silver",
        "silver/rejects": "silver",
        "gold/monthly_summary": "gold",
        "gold/category_trends": "gold",
        "gold/vendor_spend": "gold",
        "gold/vendor_monthly": "gold",
        "gold/time_spine_day": "gold",
        "platinum/documents": "platinum",
        "gold/process_event_log": "gold",
        "gold/process_cases": "gold",
        "gold/process_dfg": "gold",
        "gold/process_variants": "gold",
        "gold/process_model": "gold",
        "gold/process_model_arcs": "gold",
        "gold/process_conformance": "gold",
        "gold/process_variant_deviations": "gold",
        "gold/process_bottlenecks": "gold",
        "gold/process_case_durations": "gold",
        "platinum/embeddings": "platinum",
        "agents/questions": "agents",
        "agents/transaction_categories": "agents",
        "agents/anomaly_explanations": "agents",
        "agents/question_answers": "agents",
        "quality/daily_report": "quality",
    }


def test_one_connected_graph_from_bronze_to_platinum():
    graph = _graph()
    # dbt sources are the bronze Python assets themselves, not separate external assets
    assert not [k for k in graph.get_all_asset_keys() if not graph.get(k).is_materializable]
    upstream = graph.get_ancestor_asset_keys(AssetKey(["platinum", "documents"]))
    assert {
        AssetKey(["bronze", "transactions"]),
        AssetKey(["bronze", "vendors"]),
        AssetKey(["bronze", "employees"]),
    } <= upstream
    # rejects accounts for every source (the daily ones through their incremental int_*_checked)
    rejects_ancestors = graph.get_ancestor_asset_keys(AssetKey(["silver", "rejects"]))
    assert {
        AssetKey(["bronze", s]) for s in ("transactions", "events", "vendors", "employees")
    } <= rejects_ancestors


def test_transactions_and_events_are_daily_partitioned_from_bronze_to_silver():
    graph = _graph()
    daily = {
        key.to_user_string()
        for key in graph.materializable_asset_keys
        if graph.get(key).partitions_def is not None
    }
    assert daily == {
        "bronze/transactions",
        "bronze/events",
        "silver/int_transactions_checked",
        "silver/transactions",
        "silver/int_events_checked",
        "silver/events",
    }
    # a backfill over a range is one run (one bronze pass, one dbt call over the window)
    policies = {graph.get(AssetKey.from_user_string(key)).backfill_policy for key in daily}
    assert {p.max_partitions_per_run for p in policies} == {None}


def test_dbt_tests_are_asset_checks():
    checks = {(c.asset_key.to_user_string(), c.name) for c in _graph().asset_check_keys}
    assert ("silver/transactions", "unique_transactions_transaction_id") in checks
    assert ("gold/vendor_spend", "unique_vendor_spend_spend_rank") in checks
    assert any(key == "silver/rejects" and name.startswith("accepted_values") for key, name in checks)


def test_process_mining_reads_silver_through_the_event_log():
    graph = _graph()
    log = AssetKey(["gold", "process_event_log"])
    assert {AssetKey(["silver", "events"]), AssetKey(["silver", "transactions"])} <= graph.get(
        log
    ).parent_keys
    for table in ("process_dfg", "process_conformance", "process_variant_deviations"):
        assert graph.get(AssetKey(["gold", table])).parent_keys == {log, AssetKey(["gold", "process_cases"])}
    checks = {(c.asset_key.to_user_string(), c.name) for c in graph.asset_check_keys}
    assert ("gold/process_conformance", "conformance_fitness") in checks
