"""The catalog: every output table's asset shows its columns, their meanings, its key and its name.

The column schema is derived from `tables.output_metadata`; these tests hold it against that
definition and against the data contract's column lists, so that neither a table added without
descriptions nor a definition that drifts from the contract goes unnoticed. Only the tables defined in
`output_metadata` are compared: tables the contract names and the code does not have yet are left
for the change that adds them.
"""

from __future__ import annotations

import re
from pathlib import Path

import dagster as dg
import pytest
from sqlalchemy import JSON, Date, DateTime, Integer, Numeric, Text, inspect

from audit_pipeline.catalog import column_type, table_metadata
from audit_pipeline.definitions import defs
from audit_pipeline.tables import output_metadata

from .builder import SourceBuilder, warehouse

CONTRACT = Path(__file__).resolve().parents[1].parent / "shared" / "spec" / "data-contract.md"
OUTPUT_TABLES = sorted(name for name, table in output_metadata().tables.items() if not table.info.get("bookkeeping"))

# The contract's type words, and what each means in SQLAlchemy.
CONTRACT_TYPES = {"text": Text, "int": Integer, "numeric": Numeric, "date": Date, "timestamptz": DateTime, "json": JSON}


def contract_tables() -> dict[str, dict]:
    """The tables of the contract's code blocks: {name: {"columns": [(name, words)], "pk": [...]}}.

    A table reads `name(col [type] [null] [pk] [fk ...], ...)`, possibly over several lines with `--`
    comments; its composite key follows as `-- pk (a, b)` before the next table, and a daily table
    without one has the daily tables' key.
    """
    assert CONTRACT.exists(), f"the data contract is expected beside the repository, at {CONTRACT}"
    blocks = re.findall(r"```\n(.*?)```", CONTRACT.read_text(), flags=re.S)
    tables = {}
    for block in blocks:
        for start in re.finditer(r"^(\w+)\(", block, flags=re.M):
            body, rest = _until_closing_paren(block[start.end():])
            following = re.split(r"^\w+\(", rest, maxsplit=1, flags=re.M)[0]  # up to the next table
            columns = []
            for item in re.sub(r"--[^\n]*", "", body).split(","):
                words = item.split()
                if words:
                    columns.append((words[0], words[1:]))
            key = re.search(r"--\s*pk\s*\(([^)]*)\)", following)
            pk = [c.strip() for c in key.group(1).split(",")] if key else [c for c, words in columns if "pk" in words]
            if not pk and [c for c, _ in columns[:2]] == ["tenant_id", "snapshot_date"]:
                pk = ["tenant_id", "snapshot_date"]  # "Every daily table holds exactly one row per (tenant, day)"
            tables[start.group(1)] = {"columns": columns, "pk": pk}
    return tables


def _until_closing_paren(text: str) -> tuple[str, str]:
    depth = 1
    for position, char in enumerate(text):
        depth += {"(": 1, ")": -1}.get(char, 0)
        if depth == 0:
            return text[:position], text[position + 1:]
    raise AssertionError("unbalanced parentheses in the contract")


def asset_specs() -> dict[str, dg.AssetSpec]:
    return {spec.key.to_user_string(): spec for spec in defs.resolve_all_asset_specs()}


def test_the_contract_parser_reads_the_tables_it_should():
    tables = contract_tables()
    assert tables["severity_snapshot"]["pk"] == ["tenant_id", "snapshot_date"]
    assert tables["repeat_finding"]["pk"] == ["observation_id"]
    assert [c for c, _ in tables["compliance_snapshot"]["columns"]] == [
        "tenant_id", "snapshot_date", "total", "compliant", "percentage"
    ]
    assert tables["compliance_snapshot"]["columns"][-1] == ("percentage", ["numeric", "null"])


def test_every_output_table_has_an_asset_with_its_column_schema_and_table_name():
    specs = asset_specs()
    missing = [name for name in OUTPUT_TABLES if name not in specs]
    assert not missing, f"output tables without an asset of the same name: {missing}"
    for name in OUTPUT_TABLES:
        metadata = specs[name].metadata
        assert isinstance(metadata.get("dagster/column_schema"), dg.TableSchema), name
        assert metadata.get("dagster/table_name") == name


@pytest.mark.parametrize("name", OUTPUT_TABLES)
def test_column_schema_is_the_table_definition(name):
    table = output_metadata().tables[name]
    schema = asset_specs()[name].metadata["dagster/column_schema"]
    assert [c.name for c in schema.columns] == [c.name for c in table.columns]
    for shown, column in zip(schema.columns, table.columns):
        assert shown.type == column_type(column)
        assert shown.description and shown.description.strip(), f"{name}.{column.name} has no description"
        assert shown.description == column.comment
        assert shown.constraints.nullable == column.nullable, f"{name}.{column.name}"
    primary_key = ", ".join(c.name for c in table.primary_key.columns)
    assert schema.constraints.other == [f"primary key ({primary_key})"]


@pytest.mark.parametrize("name", OUTPUT_TABLES)
def test_table_definition_is_the_contracts(name):
    contract = contract_tables()
    assert name in contract, f"output table {name} is not in the data contract"
    table = output_metadata().tables[name]
    assert [c.name for c in table.columns] == [c for c, _ in contract[name]["columns"]]
    assert [c.name for c in table.primary_key.columns] == contract[name]["pk"]
    for column_name, words in contract[name]["columns"]:
        column = table.columns[column_name]
        types = [CONTRACT_TYPES[w] for w in words if w in CONTRACT_TYPES]
        if types:  # the contract gives the type after the last column of a group; check those given
            assert isinstance(column.type, types[0]), f"{name}.{column_name}: {column.type} is not {words}"
        if "null" in words:
            assert column.nullable, f"{name}.{column_name} is nullable in the contract"


def test_daily_tables_say_how_they_are_partitioned():
    specs = asset_specs()
    daily = [name for name in OUTPUT_TABLES if specs[name].partitions_def is not None]
    assert {"severity_snapshot", "dashboard_snapshot", "compliance_trend_daily"} <= set(daily)
    by_day = set(daily) - {"observation_history", "requirement_history", "severity_trend_quarterly"}
    for name in daily:
        text = specs[name].metadata["partitioned_by"].value
        assert "By day in Asia/Kolkata" in text
        assert ("snapshot_date = D" in text) == (name in by_day), (name, text)
    # Tables whose rows are not those of one day say what a partition stands for.
    assert "fiscal quarter" in specs["severity_trend_quarterly"].metadata["partitioned_by"].value
    assert "whole history" in specs["observation_history"].metadata["partitioned_by"].value
    assert "partitioned_by" not in specs["repeat_finding"].metadata


def test_table_name_carries_the_output_schema(monkeypatch):
    monkeypatch.setenv("AUDIT_PIPELINE_OUTPUT_SCHEMA", "audit_pipeline")
    assert table_metadata("health_snapshot")["dagster/table_name"] == "audit_pipeline.health_snapshot"
    with pytest.raises(KeyError, match="not an output table"):
        table_metadata("no_such_table")


@pytest.mark.postgres
def test_postgres_stores_the_descriptions_as_column_comments(pg_databases):
    from audit_pipeline.resources import create_database_engine
    from audit_pipeline.settings import parse_database_url

    engine = create_database_engine(parse_database_url(pg_databases.create()))
    try:
        SourceBuilder(engine)  # the source tables, which prepare() looks at
        warehouse(engine).tables.prepare()
        with engine.connect() as conn:
            comments = {c["name"]: c["comment"] for c in inspect(conn).get_columns("repeat_finding")}
    finally:
        engine.dispose()
    assert comments == {c.name: c.comment for c in output_metadata().tables["repeat_finding"].columns}
