"""Dagster's bookkeeping floor: five daily assets that do nothing, one single run over a range.

    python benchmarks/empty_assets.py START END     (DAGSTER_HOME names the instance)
"""

import sys

import dagster as dg

from audit_pipeline.partitions import daily_partitions


def empty_daily_asset(name: str) -> dg.AssetsDefinition:
    @dg.asset(name=name, partitions_def=daily_partitions, backfill_policy=dg.BackfillPolicy.single_run())
    def _asset() -> None:
        return None

    return _asset


ASSETS = [empty_daily_asset(f"empty_{i}") for i in range(5)]

if __name__ == "__main__":
    start, end = sys.argv[1:3]
    job = dg.Definitions(assets=ASSETS, jobs=[dg.define_asset_job("empty", partitions_def=daily_partitions)]).resolve_job_def("empty")
    with dg.DagsterInstance.get() as instance:
        result = job.execute_in_process(
            instance=instance,
            tags={"dagster/asset_partition_range_start": start, "dagster/asset_partition_range_end": end},
            run_config={"loggers": {"console": {"config": {"log_level": "WARNING"}}}},
        )
    sys.exit(0 if result.success else 1)
