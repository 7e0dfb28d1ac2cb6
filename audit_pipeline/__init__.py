"""audit-pipeline: the daily history of a multi-tenant audit application, on Dagster."""

import warnings

import dagster as dg

# BackfillPolicy is marked beta; it is the documented way to run a range of days as one run, and
# the warning would otherwise be printed on every load of the code location.
warnings.filterwarnings("ignore", category=dg.BetaWarning)
