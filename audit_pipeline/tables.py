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
    text,
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
#
# Each column's `comment` is its meaning, from the data contract. It is the one place the meanings are
# written down: PostgreSQL stores them (COMMENT ON COLUMN, for whoever reads the tables with psql or a
# BI tool) and the Dagster catalog shows them (`catalog.table_metadata` derives the column schema from
# these definitions).

PERCENT = Numeric(5, 2)
SIGNED_PERCENT = Numeric(6, 2)
SEVERITIES = ("CRITICAL", "HIGH", "MEDIUM", "LOW")


def tenant_id(**kwargs) -> Column:
    return Column("tenant_id", Text, comment="The tenant (tenant.id).", **kwargs)


def severity_open_count(severity: str, when: str) -> Column:
    return Column(
        f"{severity.lower()}_open", Integer, nullable=False,
        comment=f"Observations open {when} whose severity as of then is {severity}.",
    )


def output_metadata(schema: str | None = None) -> MetaData:
    """The pipeline's own tables, in `schema` (None: the connection's default schema)."""
    md = MetaData(schema=schema)

    def daily(name: str, *columns: Column) -> Table:
        return Table(
            name,
            md,
            tenant_id(primary_key=True),
            Column(
                "snapshot_date", Date, primary_key=True,
                comment="The day D in the reporting time zone; the row describes the world at its end, T(D).",
            ),
            *columns,
            # A run replaces, reads and checks whole days: without it each of those statements
            # reads every day of the table.
            Index(f"{name}_by_day", "snapshot_date"),
        )

    daily(
        "severity_snapshot",
        *(severity_open_count(severity, "at T(D)") for severity in SEVERITIES),
        Column(
            "open_total", Integer, nullable=False,
            comment="All observations open at T(D), those of an unknown severity included.",
        ),
    )
    daily(
        "compliance_snapshot",
        Column(
            "total", Integer, nullable=False,
            comment="Requirements created before T(D) whose status as of T(D) is not NOT_APPLICABLE.",
        ),
        Column("compliant", Integer, nullable=False, comment="Requirements whose status as of T(D) is COMPLIANT."),
        Column(
            "percentage", PERCENT, nullable=True,
            comment="100 * compliant / total, rounded to 2 decimals; null when total is 0.",
        ),
    )
    daily(
        "health_snapshot",
        Column(
            "severity_score", PERCENT, nullable=False,
            comment="max(0, 100 - (10*critical + 5*high + 2*medium + 1*low)) over the open observations.",
        ),
        Column(
            "compliance_score", PERCENT, nullable=False,
            comment="The compliance percentage, or 100 when it is null.",
        ),
        Column(
            "health_score", Numeric(4, 1), nullable=False,
            comment="0.5 * compliance_score + 0.5 * severity_score, rounded to 1 decimal.",
        ),
    )
    daily(
        "dashboard_snapshot",
        Column(
            "captured_at", DateTime(timezone=True), nullable=False,
            comment="T(D): the instant the snapshot describes (the end of the day), not when it was computed.",
        ),
        Column(
            "metrics", JSON, nullable=False,
            comment=(
                "The dashboard's metrics: healthScore, compliance {total, compliant, percentage}, "
                "severity {total, criticalOpen, highOpen, mediumOpen, lowOpen}."
            ),
        ),
    )
    daily(
        "compliance_trend_daily",
        Column(
            "compliance_percentage", PERCENT, nullable=True,
            comment="The day's compliance percentage (compliance_snapshot.percentage).",
        ),
        Column(
            "change_1d", SIGNED_PERCENT, nullable=True,
            comment="The percentage minus the previous day's, when both exist.",
        ),
        Column(
            "rolling_7d_avg", PERCENT, nullable=True,
            comment="Mean of the non-null percentages of the days D-6..D, rounded to 2 decimals.",
        ),
    )
    Table(
        "severity_trend_quarterly",
        md,
        tenant_id(primary_key=True),
        Column(
            "fiscal_year", Integer, primary_key=True,
            comment="The calendar year in which the fiscal year starts (FY2025 starts in 2025).",
        ),
        Column("fiscal_quarter", Integer, primary_key=True, comment="Quarter of the fiscal year, 1 to 4."),
        Column(
            "quarter_label", Text, nullable=False,
            comment="The quarter, then the fiscal year as its two calendar years: Q1 FY2025-26.",
        ),
        Column("quarter_start", Date, nullable=False, comment="First day of the quarter."),
        Column("quarter_end", Date, nullable=False, comment="Last day of the quarter."),
        Column(
            "as_of_date", Date, nullable=False,
            comment="The quarter's latest snapshot day (the quarter in progress too): the counts are that day's.",
        ),
        *(severity_open_count(severity, "at the end of as_of_date") for severity in SEVERITIES),
        # A run rewrites the quarters of its days, found by their first day.
        Index("severity_trend_quarterly_by_start", "quarter_start"),
        info={PARTITIONED_AS: "partition D stands for D's fiscal quarter: a run rewrites the rows of the quarters its "
                              "days fall in, each from the latest snapshot of its quarter"},
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
            "captured_at", DateTime(timezone=True), nullable=False,
            comment="capturedAt of the row compared: the earliest of the tenant and day (later ones are re-runs).",
        ),
        Column(
            "metric", Text, primary_key=True,
            comment="The metric that differs, by its path in the metrics JSON (healthScore, compliance.total, severity.highOpen, ...).",
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
        Column("observation_id", Text, primary_key=True, comment="The repeat observation (observation.id)."),
        tenant_id(nullable=False),
        Column("title", Text, comment="Its title, as stored."),
        Column("status", Text, comment="Its status, as stored."),
        Column("current_severity", Text, comment="Its severity, trimmed and upper-cased."),
        Column(
            "previous_severity", Text,
            comment="Severity of the observation it repeats (its repeat_of_id), trimmed and upper-cased.",
        ),
        Column(
            "original_observation_id", Text, nullable=False,
            comment="The first occurrence: the last observation of the chain followed through repeat_of_id.",
        ),
        Column(
            "original_date", Date,
            comment="The day (reporting time zone) on which the first occurrence was created.",
        ),
        Column(
            "occurrence_count", Integer, nullable=False,
            comment="Length of the chain, the observation itself included.",
        ),
    )
    Table(
        "engagement_progress",
        md,
        Column("engagement_id", Text, primary_key=True, comment="The engagement (audit_engagement.id)."),
        tenant_id(nullable=False),
        Column("engagement_name", Text, comment="Its name, as stored."),
        Column("engagement_status", Text, comment="Its status, as stored."),
        Column(
            "observation_count", Integer, nullable=False,
            comment="Its observations (those of the same tenant).",
        ),
        Column("open_count", Integer, nullable=False, comment="Of those, the ones open now (closed_at null)."),
        Column("closed_count", Integer, nullable=False, comment="Of those, the ones closed now."),
    )
    history(
        "observation_history", md, "observation_id", "observation.id", "severity",
        "The observation's severity as of the end of each day of the run (trimmed, upper case; unknown values "
        "kept, null stays null), on the days it was open.",
    )
    history(
        "requirement_history", md, "requirement_id", "compliance_requirement.id", "status",
        "The requirement's status as of the end of each day of the run (trimmed, upper case; unknown values "
        "kept, null stays null), from its creation on.",
    )
    snapshot_change(md)

    # The record history's own bookkeeping (not tables of the contract): each log row's parsed field
    # values, by record, so that an update reads only the records new rows touch (audit_log has no
    # index by record, and the pipeline may add none to it); and where its log reader stands.
    Table(
        "history_log_value",
        md,
        Column("log_id", LOG_ID, nullable=False, comment="audit_log.id"),
        Column("record_table", Text, nullable=False, comment="audit_log.table_name"),
        Column("record_id", Text, nullable=False, comment="audit_log.record_id"),
        Column("changed_at", DateTime(timezone=True), nullable=False, comment="audit_log.changed_at"),
        Column("change_day", Date, nullable=False, comment="changed_at as a day in the reporting time zone"),
        Column("new_present", Boolean, nullable=False, comment="new_data holds the field (severity or status)"),
        Column("new_value", Text, comment="its value there, as text (null for JSON null)"),
        Column("old_present", Boolean, nullable=False, comment="old_data holds the field"),
        Column("old_value", Text, comment="its value there, as text (null for JSON null)"),
        # Indexes, not a primary key: a rebuild drops them, loads a million rows, and builds them
        # again, several times faster than keeping them up to date row by row.
        Index("history_log_value_by_log_id", "log_id", unique=True),
        Index("history_log_value_by_record", "record_table", "record_id"),
        info=BOOKKEEPING,
    )
    Table(
        "history_log_position",
        md,
        Column("consumer", Text, primary_key=True, comment="who reads the log from here"),
        Column("position", Text, nullable=False, comment="a log_reader.LogPosition as JSON"),
        Column("timezone", Text, nullable=False, comment="the reporting time zone the days were those of"),
        info=BOOKKEEPING,
    )

    # The current-state tables' own bookkeeping (current_state.py): a copy of what repeat_finding,
    # engagement_progress and their two checks read of `observation`, kept up to date from the log
    # and indexed as the update reads it (children by repeat_of_id, an engagement's observations, a
    # tenant's), so that a night reads the observations it touches, not all of them. The source
    # tables may get no index; these are ours.
    Table(
        "current_observation",
        md,
        Column("id", Text, nullable=False, comment="observation.id"),
        Column("tenant_id", Text, comment="observation.tenant_id"),
        Column("title", Text, comment="observation.title"),
        Column("status", Text, comment="observation.status"),
        Column("severity", Text, comment="observation.severity, as stored"),
        Column("created_at", DateTime(timezone=True), comment="observation.created_at"),
        Column("closed_at", DateTime(timezone=True), comment="observation.closed_at"),
        Column("engagement_id", Text, comment="observation.engagement_id"),
        Column("repeat_of_id", Text, comment="observation.repeat_of_id"),
        Column(
            "cross_tenant_link", Boolean, nullable=False,
            comment="repeat_of_id names an existing observation of another tenant (or either tenant is null)",
        ),
        Column("on_cycle", Boolean, nullable=False, comment="its repeat_of_id chain comes back to it"),
        # Indexes, not a primary key: a rebuild drops them, loads every observation and builds them
        # again (as history_log_value does).
        Index("current_observation_by_id", "id", unique=True),
        Index("current_observation_by_repeat_of", "repeat_of_id"),
        Index("current_observation_by_engagement", "engagement_id"),
        Index("current_observation_by_tenant", "tenant_id"),
        # The two checks read only the flagged rows (a few hundred), through these.
        Index("current_observation_cross_tenant", "id",
              postgresql_where=text("cross_tenant_link"), sqlite_where=text("cross_tenant_link")),
        Index("current_observation_on_cycle", "id", postgresql_where=text("on_cycle"), sqlite_where=text("on_cycle")),
        info=BOOKKEEPING,
    )
    Table(
        "current_onboarded_tenant",
        md,
        Column("tenant_id", Text, primary_key=True, comment="tenant.id of a tenant whose onboarding_completed is true"),
        info=BOOKKEEPING,
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


# Tables the pipeline keeps for itself, not tables of the contract: no asset shows them.
BOOKKEEPING = {"bookkeeping": True}
# How a daily asset's partitions map to its table's rows, where that is not "the rows of day D".
PARTITIONED_AS = "partitioned_as"


def history(name: str, md: MetaData, id_column: str, id_source: str, value_column: str, value_meaning: str) -> Table:
    """A record history: one row per maximal run of days with one place (see the contract)."""
    return Table(
        name,
        md,
        Column(id_column, Text, primary_key=True, comment=f"The record ({id_source})."),
        Column("tenant_id", Text, comment="The record's tenant (its live row's tenant_id)."),
        Column(value_column, Text, comment=value_meaning),
        Column("valid_from", Date, primary_key=True, comment="The first day of this run of days with one value."),
        Column("valid_to", Date, comment="The day after its last day; null while the run goes on."),
        # A run's snapshots read the runs that overlap its days (mostly those still open) and those
        # that end in them; what changed on a day reads the runs that start or end on it.
        Index(f"{name}_by_valid_to", "valid_to"),
        Index(f"{name}_by_valid_from", "valid_from"),
        info={PARTITIONED_AS: "partition D stands for the records' places on D; materializing any day brings the "
                              "whole history (every day, those before the first partition too) up to date"},
    )


DAILY_TABLES = ("severity_snapshot", "compliance_snapshot", "health_snapshot", "dashboard_snapshot")
