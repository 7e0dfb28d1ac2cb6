"""The pipeline's SQL, written once for SQLite and PostgreSQL, one module per family of assets.

- `history`: the record history (every finding's severity, every requirement's status, as runs of
  days with one value), rebuilt or brought up to date from `audit_log`;
- `snapshots`: the daily snapshots, counted from the history;
- `changes`: what changed on each day (snapshot_change), read off the history's runs;
- `trends`, `findings`: what the dashboard's widgets read;
- `legacy`: the old cron job's snapshots compared with the pipeline's;
- `checks`: the rows an asset check reports; `log`: what the log reader's consumers read.

Values are always bound parameters; the only text spliced into a statement is code: column names,
table names (quoted by SQLAlchemy) and the dialect's fragments (`..dialect`).

Common parameters: :tz (reporting time zone), :ws (whitespace trimmed from enum values),
:day_min / :day_max (stand-ins for -inf / +inf), :range_start, :range_after (a run's first day and
the day after its last).
"""
