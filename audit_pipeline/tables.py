"""Table definitions, as the data contract fixes them.

`source_metadata` mirrors the application's tables. The pipeline itself only reads them; these
definitions exist so that the demo generator and the tests can create them.

`output_metadata(schema)` describes the tables the pipeline owns. SQLAlchemy renders their DDL for
each database, so there is one definition, not one per dialect.
"""

from __future__ import annotations

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    Column,
    Date,
    DateTime,
    ForeignKey,
    Index,
    Integer,
    MetaData,
    Numeric,
    Table,
    Text,
)

source_metadata = MetaData()

tenant = Table(
    "tenant",
    source_metadata,
    Column("id", Text, primary_key=True),
    Column("name", Text),
    Column("onboarding_completed", Boolean),
    Column("created_at", DateTime(timezone=True)),
)

audit_engagement = Table(
    "audit_engagement",
    source_metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, ForeignKey("tenant.id")),
    Column("name", Text),
    Column("status", Text),
    Column("start_date", Date),
    Column("end_date", Date),
)

observation = Table(
    "observation",
    source_metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, ForeignKey("tenant.id")),
    Column("title", Text),
    Column("severity", Text),
    Column("status", Text),
    Column("created_at", DateTime(timezone=True)),
    Column("closed_at", DateTime(timezone=True), nullable=True),
    Column("due_date", Date, nullable=True),
    Column("assigned_to", Text, nullable=True),
    Column("engagement_id", Text, ForeignKey("audit_engagement.id", ondelete="SET NULL"), nullable=True),
    Column("repeat_of_id", Text, ForeignKey("observation.id", ondelete="SET NULL"), nullable=True),
)

compliance_requirement = Table(
    "compliance_requirement",
    source_metadata,
    Column("id", Text, primary_key=True),
    Column("tenant_id", Text, ForeignKey("tenant.id")),
    Column("title", Text),
    Column("status", Text),
    Column("created_at", DateTime(timezone=True)),
)

audit_log = Table(
    "audit_log",
    source_metadata,
    Column("id", BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=False),
    Column("tenant_id", Text),
    Column("table_name", Text),
    Column("record_id", Text),
    Column("action", Text),
    # none_as_null: Python None is SQL NULL (no image), not the JSON value null.
    Column("old_data", JSON(none_as_null=True), nullable=True),
    Column("new_data", JSON(none_as_null=True), nullable=True),
    Column("changed_at", DateTime(timezone=True)),
)

SOURCE_TABLES = ("tenant", "audit_engagement", "observation", "compliance_requirement", "audit_log")

# The old nightly cron job's table (its Prisma model `DashboardSnapshot`), in the contract's shape. It
# may exist or not; the pipeline only reads it (see sql/legacy.py). Defined here, in a metadata of
# its own, for the demo generator and the tests, never created by the pipeline.
legacy_metadata = MetaData()

legacy_dashboard_snapshot = Table(
    "DashboardSnapshot",
    legacy_metadata,
    Column("id", Text, primary_key=True),
    Column("tenantId", Text),
    Column("capturedAt", DateTime(timezone=True)),
    Column("metrics", JSON(none_as_null=True)),
)

# Output tables -----------------------------------------------------------------------------------

PERCENT = Numeric(5, 2)
SIGNED_PERCENT = Numeric(6, 2)


def output_metadata(schema: str | None = None) -> MetaData:
    """The pipeline's own tables, in `schema` (None: the connection's default schema)."""
    md = MetaData(schema=schema)

    def daily(name: str, *columns: Column) -> Table:
        return Table(
            name,
            md,
            Column("tenant_id", Text, primary_key=True),
            Column("snapshot_date", Date, primary_key=True),
            *columns,
            # A run replaces, reads and checks whole days: without it each of those statements
            # reads every day of the table.
            Index(f"{name}_by_day", "snapshot_date"),
        )

    daily(
        "severity_snapshot",
        Column("critical_open", Integer, nullable=False),
        Column("high_open", Integer, nullable=False),
        Column("medium_open", Integer, nullable=False),
        Column("low_open", Integer, nullable=False),
        Column("open_total", Integer, nullable=False),
    )
    daily(
        "compliance_snapshot",
        Column("total", Integer, nullable=False),
        Column("compliant", Integer, nullable=False),
        Column("percentage", PERCENT, nullable=True),
    )
    daily(
        "health_snapshot",
        Column("severity_score", PERCENT, nullable=False),
        Column("compliance_score", PERCENT, nullable=False),
        Column("health_score", Numeric(4, 1), nullable=False),
    )
    daily(
        "dashboard_snapshot",
        Column("captured_at", DateTime(timezone=True), nullable=False),
        Column("metrics", JSON, nullable=False),
    )
    daily(
        "compliance_trend_daily",
        Column("compliance_percentage", PERCENT, nullable=True),
        Column("change_1d", SIGNED_PERCENT, nullable=True),
        Column("rolling_7d_avg", PERCENT, nullable=True),
    )
    Table(
        "severity_trend_quarterly",
        md,
        Column("tenant_id", Text, primary_key=True),
        Column("fiscal_year", Integer, primary_key=True),
        Column("fiscal_quarter", Integer, primary_key=True),
        Column("quarter_label", Text, nullable=False),
        Column("quarter_start", Date, nullable=False),
        Column("quarter_end", Date, nullable=False),
        Column("as_of_date", Date, nullable=False),
        Column("critical_open", Integer, nullable=False),
        Column("high_open", Integer, nullable=False),
        Column("medium_open", Integer, nullable=False),
        Column("low_open", Integer, nullable=False),
    )
    Table(
        "legacy_snapshot_diff",
        md,
        Column("tenant_id", Text, primary_key=True, comment="The tenant of the old job's row (its tenantId)."),
        Column(
            "snapshot_date", Date, primary_key=True,
            comment="The day D the old job's row describes: T(D) <= capturedAt < T(D+1), the day that had ended last when it ran.",
        ),
        Column(
            "metric", Text, primary_key=True,
            comment="The metric that differs, by its path in the metrics JSON (healthScore, compliance.total, severity.highOpen, ...).",
        ),
        Column(
            "captured_at", DateTime(timezone=True), nullable=False,
            comment="capturedAt of the row compared: the earliest of the tenant and day (later ones are re-runs).",
        ),
        Column("legacy_value", Numeric, nullable=True, comment="The old job's value; null when its JSON has no number there."),
        Column(
            "pipeline_value", Numeric, nullable=True,
            comment="dashboard_snapshot's value for the tenant and day; null when the pipeline has no row for them.",
        ),
        Column(
            "log_rows_between", Integer, nullable=False,
            comment="The tenant's audit_log rows with T(D) <= changed_at < captured_at: changes between the day's end and the old job's run, which can explain the difference.",
        ),
        # A run replaces, and its summary reads, whole days.
        Index("legacy_snapshot_diff_by_day", "snapshot_date"),
        comment="The old cron job's DashboardSnapshot rows compared with dashboard_snapshot: one row per tenant, day and metric that differ.",
    )
    Table(
        "repeat_finding",
        md,
        Column("observation_id", Text, primary_key=True),
        Column("tenant_id", Text, nullable=False),
        Column("title", Text),
        Column("status", Text),
        Column("current_severity", Text),
        Column("previous_severity", Text),
        Column("original_observation_id", Text, nullable=False),
        Column("original_date", Date),
        Column("occurrence_count", Integer, nullable=False),
    )
    Table(
        "engagement_progress",
        md,
        Column("engagement_id", Text, primary_key=True),
        Column("tenant_id", Text, nullable=False),
        Column("engagement_name", Text),
        Column("engagement_status", Text),
        Column("observation_count", Integer, nullable=False),
        Column("open_count", Integer, nullable=False),
        Column("closed_count", Integer, nullable=False),
    )
    return md


DAILY_TABLES = ("severity_snapshot", "compliance_snapshot", "health_snapshot", "dashboard_snapshot")
