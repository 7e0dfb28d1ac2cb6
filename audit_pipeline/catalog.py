"""What the Dagster catalog shows about an output table, derived from its definition in `tables.py`.

The SQLAlchemy table definitions are the one source of truth: the pipeline creates its tables from
them, and here the same definitions become the asset's column schema (names, types, each column's
`comment` as its description, nullability, primary key) and its table name. A table added to
`tables.output_metadata` is documented in the catalog as soon as its asset uses `table_metadata`
(or `_run.table_spec`, which does).
"""

from __future__ import annotations

from functools import cache

import dagster as dg
from sqlalchemy import Column, Date, MetaData, Table
from sqlalchemy.dialects import postgresql

from .settings import load_settings
from .tables import PARTITIONED_AS, output_metadata


def table_metadata(name: str, partitions_def: dg.PartitionsDefinition | None = None) -> dict:
    """Definition metadata of the asset that writes output table `name`; give the asset's
    partitions definition to say how the table is partitioned."""
    table = output_table(name)
    metadata = {
        "dagster/column_schema": column_schema(table),
        # Schema-qualified when AUDIT_PIPELINE_OUTPUT_SCHEMA is set: the name to query it by.
        "dagster/table_name": table.fullname,
    }
    if isinstance(partitions_def, dg.DailyPartitionsDefinition):
        metadata["partitioned_by"] = dg.MetadataValue.text(daily_partitioning(table, partitions_def))
    return metadata


def output_table(name: str) -> Table:
    tables = _output_tables(load_settings().output_schema).tables
    table = next((t for t in tables.values() if t.name == name), None)
    if table is None:
        raise KeyError(f"{name} is not an output table: define it in tables.output_metadata")
    return table


@cache
def _output_tables(schema: str | None) -> MetaData:
    return output_metadata(schema)


def column_schema(table: Table) -> dg.TableSchema:
    primary_key = ", ".join(column.name for column in table.primary_key.columns)
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                name=column.name,
                type=column_type(column),
                description=column.comment,
                constraints=dg.TableColumnConstraints(nullable=bool(column.nullable)),
            )
            for column in table.columns
        ],
        constraints=dg.TableConstraints(other=[f"primary key ({primary_key})"]),
    )


def column_type(column: Column) -> str:
    """The type as PostgreSQL (production) spells it: `numeric(5, 2)`, `timestamp with time zone`."""
    return column.type.compile(dialect=postgresql.dialect()).lower()


def daily_partitioning(table: Table, partitions_def: dg.DailyPartitionsDefinition) -> str:
    """How a daily table's rows map to partitions, in words."""
    day_column = next((c.name for c in table.primary_key.columns if isinstance(c.type, Date)), "its day")
    meaning = table.info.get(PARTITIONED_AS) or f"partition D holds the rows with {day_column} = D; a run replaces its days' rows"
    return f"By day in {partitions_def.timezone}, from {partitions_def.start.date().isoformat()}: {meaning}."
