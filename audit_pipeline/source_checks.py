"""Data-quality checks on the application's source tables: warnings, never blocking.

The pipeline handles these rows as the contract says, but someone should look at them. Each check is
declared on the asset that reads the table it looks at and is evaluated in that asset's own step,
at the same time as its writes (see `_run.write_at_once`): it reads only sources, so it need not
wait for them, and it keeps the second database core busy while the longest write runs.

A failing check names the offending ids (the first MAX_EXAMPLES) in its metadata and counts them by
kind.
"""

from __future__ import annotations

from collections import Counter
from typing import Callable

import dagster as dg

from .current_state import CROSS_TENANT_CHECK, CYCLE_CHECK
from .sql import checks as check_sql
from .sql import findings as findings_sql
from .sql.common import SEVERITIES
from .warehouse import Warehouse

MAX_EXAMPLES = 20
REQUIREMENT_STATUSES = ("COMPLIANT", "PARTIALLY_COMPLIANT", "NON_COMPLIANT", "NOT_APPLICABLE")
WARN = dg.AssetCheckSeverity.WARN

# A check's evaluation: the warehouse in, the result out.
Evaluation = Callable[[Warehouse], dg.AssetCheckResult]


def problems_result(
    problems: list[tuple], severity=dg.AssetCheckSeverity.ERROR, asset_key=None, check_name=None, **metadata
) -> dg.AssetCheckResult:
    """A check result from offending rows (kind, id, detail); a step that checks several assets
    names the check's asset and name."""
    examples = [f"{kind}: {id_}" + (f" ({detail})" if detail not in (None, "") else "") for kind, id_, detail in problems]
    return dg.AssetCheckResult(
        asset_key=asset_key,
        check_name=check_name,
        passed=not problems,
        severity=severity,
        metadata={
            "count": len(problems),
            "by_kind": dg.MetadataValue.json(dict(Counter(kind for kind, *_ in problems))),
            "examples": dg.MetadataValue.md("\n".join(f"- `{e}`" for e in examples[:MAX_EXAMPLES]) or "none"),
            **metadata,
        },
    )


def enum_values_known(table: str, column: str, known: tuple[str, ...]) -> tuple[str, str, Evaluation]:
    def evaluate(w: Warehouse) -> dg.AssetCheckResult:
        unknown, normalized = {}, {}
        for value, norm, n in w.reader.find(check_sql.enum_values(w.dialect, table, column)):
            if norm not in known:
                unknown[repr(value)] = n
            elif value != norm:
                normalized[repr(value)] = n
        return dg.AssetCheckResult(
            passed=not unknown,
            severity=WARN,
            metadata={
                "unknown_values": dg.MetadataValue.json(unknown),
                "rows_with_unknown_values": sum(unknown.values()),
                "values_normalized": dg.MetadataValue.json(normalized),
            },
        )

    description = f"{table}.{column} holds only {', '.join(known)} (after trimming and upper-casing)."
    return f"{table}_{column}_values_known", description, evaluate


def problems(query: Callable[[Warehouse], list[tuple]]) -> Evaluation:
    return lambda w: problems_result(query(w), WARN)


# Per asset: (check name, description, evaluation).
SOURCE_CHECKS: dict[str, list[tuple[str, str, Evaluation]]] = {
    "severity_snapshot": [
        enum_values_known("observation", "severity", SEVERITIES),
        (
            "observations_closed_before_created",
            "Observations whose closed_at is before their created_at (never counted as open).",
            problems(lambda w: w.reader.find(check_sql.closed_before_created())),
        ),
    ],
    "compliance_snapshot": [
        enum_values_known("compliance_requirement", "status", REQUIREMENT_STATUSES),
    ],
    # Evaluated here only when the checks run without their asset: they then read `observation`
    # whole, as it is now. With the asset, its update reads the same rows from its copy of the
    # observations, in its transaction, through indexes (current_state.py): a night's check does
    # not read every observation.
    "repeat_finding": [
        (
            CROSS_TENANT_CHECK,
            "repeat_of_id links into another tenant's observations (never followed).",
            problems(lambda w: w.reader.find(findings_sql.cross_tenant_repeat_links())),
        ),
        (
            CYCLE_CHECK,
            "Observations on a cycle of repeat_of_id links (chains stop there).",
            problems(lambda w: w.reader.find(findings_sql.repeat_cycles(w.dialect), sep=findings_sql.PATH_SEPARATOR)),
        ),
    ],
}


def check_specs(*assets: dg.AssetSpec) -> list[dg.AssetCheckSpec]:
    """The source checks of these assets, to declare on the (multi-)asset that writes them."""
    return [
        dg.AssetCheckSpec(name, asset=spec.key, description=description)
        for spec in assets
        for name, description, _ in SOURCE_CHECKS.get(spec.key.to_user_string(), [])
    ]


def selected_checks(context: dg.AssetExecutionContext, w: Warehouse, *assets: dg.AssetSpec) -> dict:
    """The selected source checks of these assets, as steps for `write_at_once`."""
    steps = {}
    for spec in assets:
        for name, _, evaluate in SOURCE_CHECKS.get(spec.key.to_user_string(), []):
            key = dg.AssetCheckKey(spec.key, name)
            if key in context.selected_asset_check_keys:
                steps[key] = lambda evaluate=evaluate: evaluate(w)
    return steps
