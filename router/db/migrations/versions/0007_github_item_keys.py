"""Key GitHub items by `<repository id>#<number>`, merging the two halves of split PRs.

GitHub items were keyed by `issue.id` or `pull_request.id`, so a pull request was two
items: one from `pull_request` events (`pull_request.id`) and one from `issue_comment`
events (`issue.id`). Both kinds of event carry the repository id and the number, which
now key the item (adapters.github.items.item_id).

The old id of each item is mapped to its new one from the raw deliveries kept in
`inbox` (every GitHub item delivery names the repository id, the number and the old
id); an old id the inbox no longer explains (deliveries removed by retention) or that
two different items claim is left as it was, and logged. Then, wherever a GitHub item
id is stored:

- `items`: rows that are one item now become one row. State and key come from the row
  whose state is newest (by the item's `updated_at`); the history keeps the newest
  `newest_at`, the earliest `created_at`, the newest row's running trigger clocks each
  started at the earliest start either row saw, who assigned whom (the newest row wins a
  disagreement), and `handed_away` if either half was handed away, so a person is not
  overruled a second time.
- `timers`: one timer per item and trigger: the armed one due first (else the latest).
- `escalation_items`: one membership per escalation and item: open if either was, joined
  at the earlier time.
- `charges`: one charge per item and week, the larger (the split counted it twice).
- `decisions.item_id`, `outbox.item` and `outbox.target`'s `id`: renamed.

Page `dedup_key`s (escalations, and actions already queued or sent) are left alone: they
name pages PagerDuty holds, and resolving needs the key the page was sent with. An item
that is a member of such a page still joins it rather than paging again.

The merge cannot be undone: downgrading leaves the rows as they are.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-22
"""

import logging
from collections.abc import Callable, Iterator, Sequence
from datetime import datetime
from typing import Any

import orjson
import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("alembic.runtime.migration")
BIG_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TIME = sa.DateTime(timezone=True)
CHUNK = 1000  # rows read per round

# The tables as this revision knows them: the migration must not follow later code.
INBOX = sa.table("inbox", sa.column("id", BIG_ID), sa.column("source", sa.String),
                 sa.column("body", sa.LargeBinary))
ITEMS = sa.table("items", sa.column("id", BIG_ID), sa.column("source", sa.String),
                 sa.column("item_id", sa.String), sa.column("key", sa.String),
                 sa.column("state", sa.Text), sa.column("history", sa.Text),
                 sa.column("updated_at", TIME))
DECISIONS = sa.table("decisions", sa.column("id", BIG_ID), sa.column("source", sa.String),
                     sa.column("item_id", sa.String))
TIMERS = sa.table("timers", sa.column("id", BIG_ID), sa.column("source", sa.String),
                  sa.column("item_id", sa.String), sa.column("trigger_id", sa.String),
                  sa.column("due_at", TIME), sa.column("armed", sa.Boolean))
MEMBERS = sa.table("escalation_items", sa.column("escalation_id", BIG_ID),
                   sa.column("source", sa.String), sa.column("item_id", sa.String),
                   sa.column("open", sa.Boolean), sa.column("joined_at", TIME))
CHARGES = sa.table("charges", sa.column("week_start", sa.Date), sa.column("source", sa.String),
                   sa.column("item_id", sa.String), sa.column("hours", sa.Float))
OUTBOX = sa.table("outbox", sa.column("id", BIG_ID), sa.column("item", sa.String),
                  sa.column("target", sa.Text))
GITHUB = "github"


def upgrade() -> None:
    conn = op.get_bind()
    new_ids = _new_ids(conn)
    if not new_ids:
        return
    _merge_items(conn, new_ids)
    _rename_decisions(conn, new_ids)
    _merge(conn, TIMERS, new_ids, ("trigger_id",), _timer_kept, {})
    _merge(conn, MEMBERS, new_ids, ("escalation_id",), _member_kept, {
        "open": lambda rows: any(r.open for r in rows),
        "joined_at": lambda rows: min(r.joined_at for r in rows)})
    _merge(conn, CHARGES, new_ids, ("week_start",), lambda rows: max(rows, key=_hours), {})
    _rename_actions(conn, new_ids)


def downgrade() -> None:
    """Leave the rows as they are: merged items cannot be split again."""


def _new_ids(conn: sa.Connection) -> dict[str, str]:
    """Map each old GitHub item id the inbox explains to `<repository id>#<number>`."""
    found: dict[str, set[str]] = {}
    for body in _chunks(conn, sa.select(INBOX.c.id, INBOX.c.body)
                        .where(INBOX.c.source == GITHUB), INBOX.c.id):
        for old, new in _ids_in(body.body):
            found.setdefault(old, set()).add(new)
    stored = set(conn.execute(sa.select(ITEMS.c.item_id).where(ITEMS.c.source == GITHUB))
                 .scalars()) | set(conn.execute(sa.select(DECISIONS.c.item_id).distinct().where(
                     DECISIONS.c.source == GITHUB, DECISIONS.c.item_id.is_not(None))).scalars())
    ambiguous = {old for old, news in found.items() if len(news) > 1}
    unexplained = {old for old in stored if "#" not in old and old not in found}
    if ambiguous or unexplained:
        log.warning("github_item_keys: %d GitHub item ids keep their old form (%d not in "
                    "the inbox, %d claimed by two items)", len(ambiguous | unexplained),
                    len(unexplained), len(ambiguous))
    return {old: news.pop() for old, news in found.items()
            if old not in ambiguous and old in stored}


def _ids_in(body: bytes) -> Iterator[tuple[str, str]]:
    """Yield (old id, new id) for the issue or pull request a raw delivery names."""
    try:
        payload = orjson.loads(body)
    except orjson.JSONDecodeError:
        return
    repository = payload.get("repository") if isinstance(payload, dict) else None
    repo_id = repository.get("id") if isinstance(repository, dict) else None
    if not isinstance(repo_id, int | str) or isinstance(repo_id, bool):
        return
    for name in ("issue", "pull_request"):
        obj = payload.get(name)
        if not isinstance(obj, dict):
            continue
        old, number = obj.get("id"), obj.get("number")
        if isinstance(old, int | str) and isinstance(number, int) and not isinstance(
                old, bool) and not isinstance(number, bool):
            yield str(old), f"{repo_id}#{number}"


def _chunks(conn: sa.Connection, query: sa.Select[Any], order: Any) -> Iterator[Any]:
    """Yield the rows of `query` a chunk at a time, in `order` (a unique column)."""
    last = None
    while True:
        page = query if last is None else query.where(order > last)
        rows = conn.execute(page.order_by(order).limit(CHUNK)).all()
        yield from rows
        if len(rows) < CHUNK:
            return
        last = getattr(rows[-1], order.name)


def _groups(rows: Sequence[Any], new_ids: dict[str, str],
            key: Callable[[Any], tuple[Any, ...]]) -> dict[tuple[Any, ...], list[Any]]:
    """Group rows that are one after the rename; rows not renamed join only their group."""
    groups: dict[tuple[Any, ...], list[Any]] = {}
    for row in rows:
        new = new_ids.get(row.item_id, row.item_id)
        groups.setdefault((new, *key(row)), []).append(row)
    return {k: v for k, v in groups.items() if any(r.item_id != k[0] for r in v)}


def _where_row(table: Any, row: Any, columns: Sequence[str]) -> Any:
    return sa.and_(*(table.c[name] == getattr(row, name) for name in columns))


def _merge(conn: sa.Connection, table: Any, new_ids: dict[str, str], also: tuple[str, ...],
           kept: Callable[[list[Any]], Any],
           values: dict[str, Callable[[list[Any]], Any]]) -> None:
    """Rename a table's GitHub rows, keeping one row where several become one key."""
    rows = conn.execute(sa.select(table).where(table.c.source == GITHUB)).all()
    ident = ("source", "item_id", *also)
    for (new, *_), group in _groups(rows, new_ids,
                                    lambda r: tuple(getattr(r, n) for n in also)).items():
        keep = kept(group)
        for row in group:
            if row is not keep:
                conn.execute(sa.delete(table).where(_where_row(table, row, ident)))
        conn.execute(sa.update(table).where(_where_row(table, keep, ident)).values(
            item_id=new, **{name: merge(group) for name, merge in values.items()}))


def _timer_kept(rows: list[Any]) -> Any:
    armed = [r for r in rows if r.armed]
    return min(armed, key=lambda r: r.due_at) if armed else max(rows, key=lambda r: r.due_at)


def _member_kept(rows: list[Any]) -> Any:
    return min(rows, key=lambda r: r.joined_at)


def _hours(row: Any) -> float:
    return float(row.hours)


def _rename_decisions(conn: sa.Connection, new_ids: dict[str, str]) -> None:
    """Rename the item of every GitHub decision, by primary key (item_id has no index)."""
    write = (sa.update(DECISIONS).where(DECISIONS.c.id == sa.bindparam("b_id"))
             .values(item_id=sa.bindparam("b_item")))
    _write_in_chunks(conn, write, (
        {"b_id": row.id, "b_item": new_ids[row.item_id]}
        for row in _chunks(conn, sa.select(DECISIONS.c.id, DECISIONS.c.item_id).where(
            DECISIONS.c.source == GITHUB), DECISIONS.c.id)
        if row.item_id in new_ids))


def _write_in_chunks(conn: sa.Connection, write: Any, params: Iterator[dict[str, Any]]) -> None:
    batch: list[dict[str, Any]] = []
    for values in params:
        batch.append(values)
        if len(batch) >= CHUNK:
            conn.execute(write, batch)
            batch = []
    if batch:
        conn.execute(write, batch)


def _rename_actions(conn: sa.Connection, new_ids: dict[str, str]) -> None:
    """Point queued and performed actions at the new id: `item`, and `target`'s `id`."""
    old_items = {f"{GITHUB}:{old}": new for old, new in new_ids.items()}
    write = (sa.update(OUTBOX).where(OUTBOX.c.id == sa.bindparam("b_id"))
             .values(item=sa.bindparam("b_item"), target=sa.bindparam("b_target")))

    def renamed(row: Any, new: str) -> dict[str, Any]:
        target = {**orjson.loads(row.target), "id": new}
        return {"b_id": row.id, "b_item": f"{GITHUB}:{new}",
                "b_target": orjson.dumps(target).decode()}
    _write_in_chunks(conn, write, (
        renamed(row, old_items[row.item])
        for row in _chunks(conn, sa.select(OUTBOX.c.id, OUTBOX.c.item, OUTBOX.c.target)
                           .where(OUTBOX.c.item.like(f"{GITHUB}:%")), OUTBOX.c.id)
        if row.item in old_items))


def _merge_items(conn: sa.Connection, new_ids: dict[str, str]) -> None:
    """Make the rows of each item one, as the module docstring says."""
    rows = conn.execute(sa.select(ITEMS).where(ITEMS.c.source == GITHUB)).all()
    for (new,), group in _groups(rows, new_ids, lambda r: ()).items():
        states = [orjson.loads(r.state) for r in group]
        order = sorted(range(len(group)), key=lambda n: (
            datetime.fromisoformat(states[n]["updated_at"]), group[n].updated_at))
        newest = group[order[-1]]
        for row in group:
            if row is not newest:
                conn.execute(sa.delete(ITEMS).where(ITEMS.c.id == row.id))
        state = {**states[order[-1]], "id": new}
        histories = [orjson.loads(group[n].history) for n in order]  # oldest state first
        conn.execute(sa.update(ITEMS).where(ITEMS.c.id == newest.id).values(
            item_id=new, key=newest.key, state=orjson.dumps(state).decode(),
            history=orjson.dumps(_merged_history(histories)).decode(),
            updated_at=max(r.updated_at for r in group)))


def _merged_history(histories: list[dict[str, Any]]) -> dict[str, Any]:
    """Join per-item histories (router.core.history's JSON), the newest state's last."""
    newest = histories[-1]

    def times(name: str) -> list[datetime]:
        return [datetime.fromisoformat(h[name]) for h in histories if h.get(name)]

    clocks = {trigger: min(datetime.fromisoformat(h["held_since"][trigger])
                           for h in histories if trigger in h.get("held_since", {}))
              for trigger in newest.get("held_since", {})}
    assigned_by: dict[str, Any] = {}
    for history in histories:
        assigned_by.update(history.get("assigned_by", {}))
    newest_at, created_at = times("newest_at"), times("created_at")
    return {
        "newest_at": max(newest_at).isoformat() if newest_at else None,
        "created_at": min(created_at).isoformat() if created_at else None,
        "held_since": {trigger: at.isoformat() for trigger, at in clocks.items()},
        "assigned_by": assigned_by,
        "handed_away": any(h.get("handed_away", False) for h in histories),
    }
