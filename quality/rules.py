"""What "good data" means per table: the DQ dimensions, and which rule feeds which dimension.

Every score is a share of rows in [0, 1]:

**silver** (`transactions`, `events`, `vendors`, `employees`): the rows are the bronze rows of the
table's source. Each bronze row is either in silver or in `silver.rejects` with the first rule it
failed (see the `int_*_checked` models); the reason's class decides the dimension it counts against:

| dimension | = 1 - (bronze rows rejected for ...) / bronze rows |
| --- | --- |
| completeness | `parse_error`, `missing_field:<name>`, plus bronze rows found in neither silver nor rejects |
| uniqueness | `duplicate` (a later copy of an id already loaded) |
| validity | `invalid_type:<name>`, `non_positive_amount`, `unknown_currency`, `unknown_category`, |
| | `orphan_vendor` |
| timeliness | `future_date` (a business date after the day of the run) |
| overall | silver rows / bronze rows: the share that passed every rule |

A rejected row counts against exactly one dimension, so `1 - overall` is the sum of the four
shortfalls. A source with no bronze rows scores 1.

**gold**: the rows are the table's own rows, judged by the `GoldRules` below: completeness = rows
whose required columns are all set; uniqueness = rows that are the first with their grain key;
validity = rows meeting every value rule; timeliness = rows whose period is not in the future;
overall = rows passing all four. An empty gold table scores 1 (the GX reconciliation against silver
catches a gold table that is empty when silver is not).
"""

from dataclasses import dataclass, field

DIMENSIONS = ("completeness", "uniqueness", "validity", "timeliness")

# Reason class (the reason without its `:<field>` suffix) -> the dimension it counts against.
# The classes are the ones silver.rejects allows (models/silver/rejects.yml, accepted_values).
REASON_DIMENSION = {
    "parse_error": "completeness",
    "missing_field": "completeness",
    "duplicate": "uniqueness",
    "invalid_type": "validity",
    "non_positive_amount": "validity",
    "unknown_currency": "validity",
    "unknown_category": "validity",
    "orphan_vendor": "validity",
    "future_date": "timeliness",
}

# The reason classes each source's `int_<source>_checked` model can produce.
SOURCE_REASONS = {
    "transactions": tuple(REASON_DIMENSION),
    "events": ("parse_error", "missing_field", "invalid_type", "duplicate"),
    "vendors": ("parse_error", "missing_field", "duplicate"),
    "employees": ("parse_error", "missing_field", "duplicate"),
}
SILVER_TABLES = tuple(SOURCE_REASONS)  # silver.<source> is the clean side of bronze.<source>


@dataclass(frozen=True)
class GoldRules:
    key: tuple[str, ...]
    required: tuple[str, ...]
    valid: tuple[str, ...]  # SQL boolean expressions over one row; null counts as invalid
    timely: str = "true"
    upstream: tuple[str, ...] = field(default=("silver.transactions",))


GOLD_RULES = {
    "monthly_summary": GoldRules(
        key=("month", "category", "department"),
        required=("month", "category", "department", "total_amount_eur", "transaction_count"),
        valid=(
            "transaction_count > 0",
            "total_amount_eur > 0",
            "month = date_trunc('month', month)::date",
            # totals are positive, so a fall can never exceed 100 %
            "mom_growth_pct is null or mom_growth_pct > -100",
            "yoy_growth_pct is null or yoy_growth_pct > -100",
        ),
        timely="month <= current_date",
    ),
    "category_trends": GoldRules(
        key=("week_start", "category"),
        required=(
            "week_start",
            "category",
            "total_amount_eur",
            "transaction_count",
            "moving_avg_4w",
            "is_complete_week",
            "is_anomaly",
        ),
        valid=(
            "total_amount_eur >= 0",
            "transaction_count >= 0",
            "moving_avg_4w >= 0",
            "extract(isodow from week_start) = 1",
            "not is_anomaly or (is_complete_week and abs(z_score) > 2)",
        ),
        timely="week_start <= current_date",
    ),
    "vendor_spend": GoldRules(
        key=("vendor_id",),
        required=(
            "spend_rank",
            "vendor_id",
            "vendor_name",
            "total_amount_eur",
            "transaction_count",
            "share_of_spend_pct",
        ),
        valid=(
            "spend_rank >= 1",
            "total_amount_eur > 0",
            "transaction_count > 0",
            "share_of_spend_pct between 0 and 100",
        ),
        upstream=("silver.transactions", "silver.vendors"),
    ),
}
GOLD_TABLES = tuple(GOLD_RULES)
