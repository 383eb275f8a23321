"""The engine and sessions every store shares: one database per process, one short transaction per call.

Stores (one per aggregate, each beside the domain it serves) take a `Database` and keep their own
queries; this module holds only what they share: engine set-up, table creation, sessions, and the
two write shapes that make a redelivered event harmless (insert once, compare-and-set).
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import event as sa_event, inspect, text
from sqlalchemy.engine import Engine
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError
from sqlmodel import Session, SQLModel, create_engine

import schemas.tables  # noqa: F401 — registers every table with SQLModel.metadata before create_all
from schemas.settings import Settings


def make_engine(settings: Settings) -> Engine:
    url = settings.sqlalchemy_url
    if url.startswith("sqlite"):
        settings.home.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

        @sa_event.listens_for(engine, "connect")
        def _wal(dbapi_connection: Any, _: Any) -> None:  # readers never block the writer
            dbapi_connection.execute("PRAGMA journal_mode=WAL")
            dbapi_connection.execute("PRAGMA synchronous=NORMAL")

        return engine
    return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=10)


class Database:
    """Usage: ``db = Database.from_settings(settings); TaskStore(db).get_task(task_id)``."""

    def __init__(self, engine: Engine) -> None:
        self.engine = engine
        self._create_tables()

    @classmethod
    def from_settings(cls, settings: Settings) -> Database:
        return cls(make_engine(settings))

    def _create_tables(self, attempts: int = 5) -> None:
        # Workers start together; on PostgreSQL two concurrent CREATE TABLEs race on the catalog.
        # The loser's retry finds the tables (create_all checks first), so retrying is enough.
        for attempt in range(attempts):
            try:
                SQLModel.metadata.create_all(self.engine)
                self._add_new_columns()
                return
            except (IntegrityError, ProgrammingError, OperationalError):
                if attempt == attempts - 1:
                    raise
                time.sleep(0.2 * (attempt + 1))

    def _add_new_columns(self) -> None:
        """create_all makes missing tables, not missing columns: a column added to an existing
        table (always nullable or with a server default) is added here, so an older database
        keeps working. Concurrent starts may race; the loser's retry finds the column."""
        existing = inspect(self.engine)
        tables = set(existing.get_table_names())
        with self.engine.begin() as connection:
            for table in SQLModel.metadata.sorted_tables:
                if table.name not in tables:
                    continue
                have = {c["name"] for c in existing.get_columns(table.name)}
                for column in table.columns:
                    if column.name in have:
                        continue
                    default = f" DEFAULT {column.server_default.arg}" if column.server_default is not None else ""  # type: ignore[attr-defined]
                    kind = column.type.compile(dialect=self.engine.dialect)
                    connection.execute(text(f'ALTER TABLE {table.name} ADD COLUMN {column.name} {kind}{default}'))

    @contextmanager
    def session(self) -> Iterator[Session]:
        with Session(self.engine, expire_on_commit=False) as session:
            yield session

    def insert_once(self, *rows: SQLModel) -> bool:
        """Insert rows keyed by natural ids, all or none; False when one was already there."""
        with self.session() as s:
            s.add_all(rows)
            try:
                s.commit()
                return True
            except IntegrityError:
                s.rollback()
                return False

    def changed(self, statement: Any) -> bool:
        """Run a compare-and-set statement; whether it changed a row (False: the guard did not hold)."""
        with self.session() as s:
            changed = s.exec(statement).rowcount
            s.commit()
            return bool(changed)
