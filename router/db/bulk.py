"""Multi-row writes whose SQL text does not depend on how many rows there are.

Kept: it pays. bench/fastpaths.py (A/B interleaved, PostgreSQL): the worker took 2.3 ms
per decided delivery with these statements and 3.6 ms with SQLAlchemy's insertmanyvalues
(1.60x).

A batch's decisions, actions, items and timers are written with one statement per table.
SQLAlchemy's multi-row INSERT spells out every row's values, so its text changes with the
row count, and for rows of many columns (a decision has 24) psycopg parses each such text
anew: its query cache keeps statements of at most 50 parameters. On PostgreSQL that
parsing was a sixth of the worker's CPU per batch. There the rows go instead as one JSON
array, unpacked into the table's own row type by `json_populate_recordset()`: one
parameter and one text per table and set of columns, cached by psycopg and prepared by
the server. (One array per column through `unnest()` was slower: psycopg escapes array
elements in Python, and JSON text is mostly quotes to escape.) SQLite keeps SQLAlchemy's
multi-row statements: it parses in C, and has no JSON record functions of the kind.

Each statement is built once per table (and set of columns): building one and its cache
key costs about as much as running it.

Ids returned by an INSERT are matched to rows by order: the rows are inserted in the
order given (`WITH ORDINALITY ... ORDER BY`), so their serial ids ascend in that order,
whatever order RETURNING lists them in. SQLAlchemy's `sort_by_parameter_order` relies on
the same.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import date, datetime
from functools import cache, partial
from typing import Any, TypeVar

import orjson
from sqlalchemy import (
    Connection,
    Dialect,
    Executable,
    Table,
    Text,
    bindparam,
    cast,
    func,
    literal_column,
    select,
)
from sqlalchemy.dialects.postgresql import JSON
from sqlalchemy.dialects.postgresql import Insert as PgInsert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import Insert as SqliteInsert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from router.db.tables import UTCDateTime

_AS_UTC = UTCDateTime()
_Insert = TypeVar("_Insert", PgInsert, SqliteInsert)
Conflict = tuple[tuple[str, ...], tuple[str, ...]]  # keys; columns to overwrite (none: keep)


def insert_rows(conn: Connection, table: Table, rows: Sequence[Mapping[str, Any]],
                on_conflict: Conflict | None = None) -> None:
    """Insert rows (all with the same keys) in one statement; with `on_conflict`, a row
    whose keys exist updates the named columns instead (none named: it is skipped).

    On PostgreSQL the rows must not repeat a key: one statement cannot update a row twice.
    """
    if not rows:
        return
    names = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        conn.execute(_json_insert(table, names, on_conflict, returning=False),
                     _json_rows(conn.dialect, rows))
    else:
        conn.execute(_sqlite_insert(table, on_conflict), list(rows))


def insert_returning_ids(conn: Connection, table: Table,
                         rows: Sequence[Mapping[str, Any]]) -> list[int]:
    """Insert rows (all with the same keys) in one statement; return their ids in order."""
    if not rows:
        return []
    names = tuple(rows[0])
    if conn.dialect.name == "postgresql":
        ids = conn.execute(_json_insert(table, names, None, returning=True),
                           _json_rows(conn.dialect, rows)).scalars().all()
        return sorted(int(i) for i in ids)
    return [int(i) for i in conn.execute(_sqlite_returning_ids(table), list(rows)).scalars()]


def _json_rows(dialect: Dialect, rows: Sequence[Mapping[str, Any]]) -> dict[str, str]:
    try:
        text = orjson.dumps(rows, default=partial(_json_value, dialect),
                            option=orjson.OPT_PASSTHROUGH_DATETIME)
    except orjson.JSONEncodeError as exc:  # say what was wrong, not orjson's summary
        raise (exc.__cause__ or exc) from None
    return {"rows": text.decode()}


def _json_value(dialect: Dialect, value: Any) -> str:
    """Write a datetime as `UTCDateTime` binds it (aware, in UTC; naive refused), a date
    as itself."""
    if isinstance(value, datetime):
        utc = _AS_UTC.process_bind_param(value, dialect)
        assert utc is not None
        return utc.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    raise TypeError(f"cannot write {type(value).__name__} to the database as JSON")


@cache
def _json_insert(table: Table, names: tuple[str, ...], on_conflict: Conflict | None,
                 returning: bool) -> Executable:
    # Rows typed by the table's own row type; columns are picked by name, not position.
    given = (func.json_populate_recordset(literal_column(f"NULL::{table.name}"),
                                          cast(bindparam("rows", type_=Text()), JSON))
             .table_valued(*names, with_ordinality="ordinality"))
    stmt = pg_insert(table).from_select(
        list(names), select(*(given.c[name] for name in names)).order_by(given.c.ordinality))
    if on_conflict is not None:
        stmt = _on_conflict(stmt, on_conflict)
    return stmt.returning(table.c.id) if returning else stmt


@cache
def _sqlite_returning_ids(table: Table) -> Executable:
    return table.insert().returning(table.c.id, sort_by_parameter_order=True)


@cache
def _sqlite_insert(table: Table, on_conflict: Conflict | None) -> Executable:
    return table.insert() if on_conflict is None else _on_conflict(sqlite_insert(table),
                                                                   on_conflict)


def _on_conflict(stmt: _Insert, on_conflict: Conflict) -> _Insert:
    """Add ON CONFLICT to a PostgreSQL or SQLite INSERT (their builders are alike)."""
    keys, overwrite = on_conflict
    if not overwrite:
        return stmt.on_conflict_do_nothing(index_elements=list(keys))
    return stmt.on_conflict_do_update(index_elements=list(keys),
                                      set_={c: stmt.excluded[c] for c in overwrite})
