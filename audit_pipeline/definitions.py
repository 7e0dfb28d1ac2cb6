import dagster as dg

from .assets import daily, findings, trends
from .jobs import audit_history_job
from .resources import database_resource_from_env

defs = dg.Definitions(
    assets=dg.load_assets_from_modules([daily, trends, findings]),
    jobs=[audit_history_job],
    resources={"database": database_resource_from_env()},
)
