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

LOG_ID = BigInteger().with_variant(Integer, "sqlite")

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
    Column("id", LOG_ID, primary_key=True, autoincrement=False),
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
    snapshot_change(md)
    history("observation_history", md, "observation_id", "severity")
    history("requirement_history", md, "requirement_id", "status")

    # The record history's own bookkeeping (not tables of the contract): each log row's parsed field
    # values, by record, so that an update reads only the records new rows touch (audit_log has no
    # index by record, and the pipeline may add none to it); and where its log reader stands.
    Table(
        "history_log_value",
        md,
        Column("log_id", LOG_ID, primary_key=True, autoincrement=False),
        Column("record_table", Text, nullable=False),
        Column("record_id", Text, nullable=False),
        Column("changed_at", DateTime(timezone=True), nullable=False),
        Column("change_day", Date, nullable=False),
        Column("new_present", Boolean, nullable=False),
        Column("new_value", Text),
        Column("old_present", Boolean, nullable=False),
        Column("old_value", Text),
        Index("history_log_value_by_record", "record_table", "record_id"),
    )
    Table(
        "history_log_position",
        md,
        Column("consumer", Text, primary_key=True),
        Column("position", Text, nullable=False),  # a log_reader.LogPosition as JSON
        Column("timezone", Text, nullable=False),  # the days were those of this time zone
    )
    return md


def snapshot_change(md: MetaData) -> Table:
    """What changed on a day (contract: "What changed on a day"): the records whose place differs
    from the day before's, per tenant of the day's snapshot."""
    return Table(
        "snapshot_change",
        md,
        Column("tenant_id", Text, primary_key=True, comment="The record's tenant, one of the day's snapshot."),
        Column("snapshot_date", Date, primary_key=True, comment="The day D: its place compared with D-1's."),
        Column("record_table", Text, primary_key=True, comment="observation or compliance_requirement."),
        Column("record_id", Text, primary_key=True, comment="The observation's or requirement's id."),
        Column(
            "change", Text, nullable=False,
            comment="opened, closed or severity_changed (observation); added, removed or status_changed "
            "(requirement). Says whether the record had a place on D-1 and on D: a null value does not.",
        ),
        Column(
            "value_before", Text, nullable=True,
            comment="The place's value on D-1 (normalized severity or status); null when it had no place "
            "(opened, added) or a null value.",
        ),
        Column(
            "value_after", Text, nullable=True,
            comment="The place's value on D; null when it has no place (closed, removed) or a null value.",
        ),
        # A run replaces and checks whole days, like the snapshots.
        Index("snapshot_change_by_day", "snapshot_date"),
    )


def history(name: str, md: MetaData, id_column: str, value_column: str) -> Table:
    """A record history: one row per maximal run of days with one place (see the contract)."""
    return Table(
        name,
        md,
        Column(id_column, Text, primary_key=True),
        Column("tenant_id", Text),
        Column(value_column, Text),
        Column("valid_from", Date, primary_key=True),
        Column("valid_to", Date),
        # A run's snapshots read the runs that overlap its days: mostly those still open.
        Index(f"{name}_by_valid_to", "valid_to"),
    )


DAILY_TABLES = ("severity_snapshot", "compliance_snapshot", "health_snapshot", "dashboard_snapshot")
