"""Write the exception log as JSON, Markdown or CSV (one entry a row)."""

from __future__ import annotations

import csv
import io
from typing import Any

from router.reviews.definitions import EXCEPTION_LOG
from router.reviews.exceptions import ExceptionEntry, ExceptionLog

COLUMNS = ("at", "kind", "items", "what", "why", "hours", "follow_up_owner", "decision_id",
           "escalation_id")


def log_json(log: ExceptionLog) -> dict[str, Any]:
    """Return `{"month", "timezone", "total", "hours", "entries": [...], "definition"}`."""
    return {"month": log.month, "timezone": log.timezone, "total": len(log.entries),
            "hours": log.hours, "entries": [_entry(e) for e in log.entries],
            "definition": EXCEPTION_LOG}


def _entry(e: ExceptionEntry) -> dict[str, Any]:
    return {"at": e.at.isoformat(), "kind": e.kind, "items": list(e.items), "what": e.what,
            "why": e.why, "hours": e.hours, "follow_up_owner": e.follow_up_owner,
            "decision_id": e.decision_id, "escalation_id": e.escalation_id}


def log_markdown(log: ExceptionLog) -> str:
    """Return the log as a Markdown table under its definition."""
    out = [f"# Exception log {log.month} ({log.timezone})", "",
           f"{len(log.entries)} entries, {log.hours:g} CTO hours charged.", "",
           f"*{EXCEPTION_LOG}*", ""]
    if not log.entries:
        return "\n".join([*out, "(none)"]) + "\n"
    out += ["| when | what | why | hours | follow-up owner |", "|---|---|---|---|---|"]
    out += [f"| {e.at.strftime('%Y-%m-%d %H:%M')} | {_cell(e.what)} | {_cell(e.why)} | "
            f"{e.hours:g} | {e.follow_up_owner or '-'} |" for e in log.entries]
    return "\n".join(out) + "\n"


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def log_csv(log: ExceptionLog) -> str:
    """Return the log as CSV, one entry a row (items joined with `;`)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    for e in log.entries:
        row = _entry(e)
        row["items"] = ";".join(e.items)
        writer.writerow(["" if row[c] is None else row[c] for c in COLUMNS])
    return buffer.getvalue()
