"""Many-row INSERTs whose Python work is done before the database's write lock is taken.

A dispatch cycle in a storm appends thousands of rows (waiting reasons, events). Through the
ORM, or even a Core executemany, each row costs Python work at execution time: the column
types' conversions (JSON to text, UTC datetimes to the driver's form) and the statement's
parameter handling. Under the SQLite write lock (:mod:`api.db.write_lock`) that work is time
the intake's group commit waits, and the dispatch worker runs niced: on a busy machine its
Python under the lock is slow. :class:`PreparedInsert` compiles the statement and converts
every value with the columns' own bind processors up front (outside the lock), so that
executing it is the driver's executemany of ready values: the same rows, written in the
order given. On PostgreSQL (no file lock: writers queue on row locks) the rows go through
SQLAlchemy's own executemany at execution, as before.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from sqlalchemy import Table, insert
from sqlalchemy.engine import Dialect
from sqlalchemy.orm import Session

from api.db.models import Base


@dataclass(frozen=True)
class PreparedInsert:
    """An INSERT into ``table`` of rows already converted for the driver (SQLite: ``sql``
    and positional ``params``), or, on other databases, the rows as given (``table``)."""

    sql: str
    params: list[tuple[Any, ...]]
    table: Table | None = None
    rows: Sequence[Mapping[str, Any]] = ()

    def __len__(self) -> int:
        return len(self.params) if self.table is None else len(self.rows)

    def execute(self, db_session: Session) -> int:
        """Run it in ``db_session``'s transaction (flushing pending ORM changes first, so
        that rows added before keep the lower ids); how many rows."""
        if not len(self):
            return 0
        db_session.flush()
        if self.table is not None:
            db_session.execute(insert(self.table), list(self.rows))
        else:
            db_session.connection().exec_driver_sql(self.sql, self.params)
        return len(self)


def prepare_insert(
    dialect: Dialect, model: type[Base], rows: Sequence[Mapping[str, Any]]
) -> PreparedInsert:
    """Compile ``INSERT INTO <model's table> (keys of the first row) VALUES ...`` for
    ``dialect`` and convert each row's values with the columns' bind processors (every row
    has the same keys; a missing key is a :class:`KeyError` now, not at execution)."""
    table = cast(Table, model.__table__)
    if not rows:
        return PreparedInsert("", [])
    keys = list(rows[0])
    for i, row in enumerate(rows):
        if len(row) != len(keys) or any(k not in row for k in keys):
            raise KeyError(f"row {i} of the {table.name} insert has keys {sorted(row)}, not {keys}")
    if dialect.name != "sqlite":
        return PreparedInsert("", [], table, list(rows))
    compiled = insert(table).compile(dialect=dialect, column_keys=keys)
    processors = {}
    for key in keys:
        column_type = table.c[key].type
        processors[key] = column_type.dialect_impl(dialect).bind_processor(dialect)

    def value(row: Mapping[str, Any], key: str) -> Any:
        process = processors[key]
        return process(row[key]) if process is not None else row[key]

    order = list(compiled.positiontup or ())  # SQLite's paramstyle is positional (qmark)
    if sorted(order) != sorted(keys):
        raise ValueError(f"unexpected parameters {order} for columns {keys} of {table.name}")
    return PreparedInsert(str(compiled), [tuple(value(row, key) for key in order) for row in rows])
