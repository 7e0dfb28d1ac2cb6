"""Settings from the environment (the data contract's variables), validated once at start-up.

A bad value is a `SettingsError` whose message is one line naming the variable, never a traceback
from deep inside Dagster or SQLAlchemy.
"""

from __future__ import annotations

import datetime as dt
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Mapping
from urllib.parse import SplitResult, urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from sqlalchemy.engine import URL, make_url
from sqlalchemy.exc import ArgumentError

DATABASE_URL_VAR = "AUDIT_PIPELINE_DATABASE_URL"
TIMEZONE_VAR = "AUDIT_PIPELINE_TIMEZONE"
START_DATE_VAR = "AUDIT_PIPELINE_START_DATE"
FISCAL_YEAR_START_MONTH_VAR = "AUDIT_PIPELINE_FISCAL_YEAR_START_MONTH"
OUTPUT_SCHEMA_VAR = "AUDIT_PIPELINE_OUTPUT_SCHEMA"
ALERT_WEBHOOK_VAR = "AUDIT_PIPELINE_ALERT_WEBHOOK"
ALERT_FORMAT_VAR = "AUDIT_PIPELINE_ALERT_FORMAT"
UI_URL_VAR = "AUDIT_PIPELINE_UI_URL"

# The shapes of alert a webhook can expect (see alerts.py).
ALERT_FORMATS = ("json", "slack", "teams", "google-chat")
LEGACY_SNAPSHOT_TABLE_VAR = "AUDIT_PIPELINE_LEGACY_SNAPSHOT_TABLE"

DEFAULT_TIMEZONE = "Asia/Kolkata"
DEFAULT_START_DATE = "2024-04-01"
DEFAULT_FISCAL_YEAR_START_MONTH = "4"
DEFAULT_LEGACY_SNAPSHOT_TABLE = "DashboardSnapshot"  # the old job's Prisma model, unmapped

# The embedded demo database: a SQLite file below the working directory (the repository root for
# `make demo`, `make dev` and `dagster dev`), created with demo data on first use.
DEMO_DATABASE_PATH = Path(".data") / "demo.sqlite"

_SCHEMA_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,62}$")


class SettingsError(ValueError):
    """A setting is missing or malformed; the message is one line meant for an operator."""


@dataclass(frozen=True)
class Settings:
    # The database URL may hold a password and the webhook URL is itself a credential: neither is in
    # the repr, so printing or logging the settings shows neither.
    database_url: str = field(repr=False)  # "" means the embedded SQLite demo database
    timezone: str
    start_date: dt.date
    fiscal_year_start_month: int
    output_schema: str | None
    alert_webhook: str | None = field(repr=False)
    alert_format: str = "json"  # one of ALERT_FORMATS
    ui_url: str | None = None  # without a trailing slash
    # The old cron job's table, read to compare: (schema or None, table), each spelled exactly as in
    # the database (always quoted in SQL, so mixed case such as Prisma's "DashboardSnapshot" works).
    legacy_snapshot_table: tuple[str | None, str] = (None, DEFAULT_LEGACY_SNAPSHOT_TABLE)

    @property
    def tz(self) -> ZoneInfo:
        return ZoneInfo(self.timezone)

    @property
    def uses_demo_database(self) -> bool:
        return not self.database_url


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if environ is None else environ

    def get(name: str, default: str = "") -> str:
        return (env.get(name) or default).strip()

    database_url = get(DATABASE_URL_VAR)
    if database_url:
        parse_database_url(database_url)
    alert_webhook = _parse_alert_webhook(get(ALERT_WEBHOOK_VAR))
    return Settings(
        database_url=database_url,
        timezone=_parse_timezone(get(TIMEZONE_VAR, DEFAULT_TIMEZONE)),
        start_date=_parse_date(START_DATE_VAR, get(START_DATE_VAR, DEFAULT_START_DATE)),
        fiscal_year_start_month=_parse_month(get(FISCAL_YEAR_START_MONTH_VAR, DEFAULT_FISCAL_YEAR_START_MONTH)),
        output_schema=_parse_schema(get(OUTPUT_SCHEMA_VAR)),
        alert_webhook=alert_webhook,
        alert_format=_parse_alert_format(get(ALERT_FORMAT_VAR), alert_webhook),
        ui_url=_parse_ui_url(get(UI_URL_VAR)),
        legacy_snapshot_table=_parse_table_name(get(LEGACY_SNAPSHOT_TABLE_VAR, DEFAULT_LEGACY_SNAPSHOT_TABLE)),
    )


def parse_database_url(raw: str) -> URL:
    """Parse and normalize a database URL: plain `postgresql://` (and `postgres://`) mean psycopg 3."""
    try:
        url = make_url(raw)
    except (ArgumentError, ValueError):
        # The message must not echo the URL: it may hold a password.
        raise SettingsError(f"{DATABASE_URL_VAR} is not a valid SQLAlchemy URL") from None
    backend, _, driver = url.drivername.partition("+")
    if backend == "postgres":
        backend = "postgresql"
    if backend == "postgresql":
        return url.set(drivername=f"postgresql+{driver or 'psycopg'}")
    if backend == "sqlite":
        return url
    raise SettingsError(
        f"{DATABASE_URL_VAR} names the database '{backend}'; only postgresql and sqlite are supported"
    )


def redact(url: str | URL) -> str:
    """The URL as it may be printed or logged: the password is replaced by ***."""
    if isinstance(url, str):
        try:
            url = make_url(url)
        except (ArgumentError, ValueError):
            return "<unparseable database URL>"
    return url.render_as_string(hide_password=True)


def _parse_timezone(name: str) -> str:
    try:
        ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise SettingsError(f"{TIMEZONE_VAR}={name!r} is not an IANA time zone (e.g. Asia/Kolkata)") from None
    return name


def _parse_date(variable: str, text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise SettingsError(f"{variable}={text!r} is not a date in the form YYYY-MM-DD") from None


def _parse_month(text: str) -> int:
    if not text.isdigit() or not 1 <= int(text) <= 12:
        raise SettingsError(f"{FISCAL_YEAR_START_MONTH_VAR}={text!r} is not a month number from 1 to 12")
    return int(text)


def _parse_schema(text: str) -> str | None:
    if not text:
        return None
    if not _SCHEMA_NAME.match(text):
        raise SettingsError(f"{OUTPUT_SCHEMA_VAR}={text!r} is not a plain SQL identifier")
    return text


def alert_format_for(webhook: str) -> str:
    """The format a webhook's service expects, where its host says so unambiguously; else json."""
    host = (urlsplit(webhook).hostname or "").lower()
    if host == "hooks.slack.com":
        return "slack"
    # Teams: workflows (Power Automate, Logic Apps) and the older connectors' incoming webhooks.
    if host.endswith((".webhook.office.com", ".logic.azure.com", ".powerplatform.com", ".powerautomate.com")):
        return "teams"
    if host == "chat.googleapis.com":
        return "google-chat"
    return "json"


def _parse_alert_webhook(text: str) -> str | None:
    # The URL is the webhook's only credential: no message here may contain it.
    if not text:
        return None
    url = _split_url(text)
    if url is None:
        raise SettingsError(f"{ALERT_WEBHOOK_VAR} is not a URL (its value is a secret and is not shown)")
    if url.scheme not in ("http", "https"):
        raise SettingsError(f"{ALERT_WEBHOOK_VAR} must start with https:// or http:// (its value is not shown)")
    if not url.hostname:
        raise SettingsError(f"{ALERT_WEBHOOK_VAR} has no host name (its value is not shown)")
    return text


def _parse_alert_format(text: str, webhook: str | None) -> str:
    if not text:  # an explicit setting wins; else what the URL says
        return alert_format_for(webhook) if webhook else "json"
    if text.lower() not in ALERT_FORMATS:
        raise SettingsError(f"{ALERT_FORMAT_VAR}={text!r} is not one of {', '.join(ALERT_FORMATS)}")
    return text.lower()


def _parse_ui_url(text: str) -> str | None:
    if not text:
        return None
    url = _split_url(text)
    if url is None or url.scheme not in ("http", "https") or not url.hostname:
        raise SettingsError(f"{UI_URL_VAR} is not an http(s) URL of the Dagster UI, e.g. https://dagster.example.com")
    return text.rstrip("/")


def _split_url(text: str) -> SplitResult | None:
    """The parts of a URL, or None when it cannot be one (spaces, control characters, a bad port)."""
    if any(char.isspace() or not char.isprintable() for char in text):
        return None
    try:
        url = urlsplit(text)
        url.port  # noqa: B018 -- raises ValueError for a port that is not a number in range
    except ValueError:
        return None
    return url
def _parse_table_name(text: str) -> tuple[str | None, str]:
    """`Table` or `schema.Table`: plain identifiers, case kept (they are quoted, never folded)."""
    parts = text.split(".")
    if len(parts) > 2 or not all(_SCHEMA_NAME.match(part) for part in parts):
        raise SettingsError(
            f"{LEGACY_SNAPSHOT_TABLE_VAR}={text!r} is not a table name (letters, digits and _, "
            "optionally schema.table, e.g. DashboardSnapshot)"
        )
    return (None, parts[0]) if len(parts) == 1 else (parts[0], parts[1])
