"""One database as the pipeline sees it: its output tables, their writes and its reads, together.

`Warehouse` is what the assets, checks and sensor are handed (one per run, see resources.py). It
holds no logic of its own: the output tables and their DDL are in output_tables.py, the writes in
writes.py, the reads in reads.py.
"""

from __future__ import annotations

from sqlalchemy import Engine

from .dialect import Dialect
from .output_tables import OutputTables
from .reads import Reader
from .settings import Settings
from .writes import TableWriter


class Warehouse:
    def __init__(self, engine: Engine, settings: Settings):
        self.engine = engine
        self.settings = settings
        self.tables = OutputTables(engine, settings)
        # The same object as the tables': preparing them tells it how audit_log keeps its images.
        self.dialect: Dialect = self.tables.dialect
        self.writer = TableWriter(self.tables)
        self.reader = Reader(self.tables)
