import dagster as dg

from .assets import daily, findings, trends
from .checks import asset_checks
from .jobs import audit_history_job
from .resources import database_resource_from_env

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([daily, trends, findings]),
    asset_checks=asset_checks,
    jobs=[audit_history_job],
    resources={"database": database_resource_from_env()},
)
