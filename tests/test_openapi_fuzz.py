"""Every route of the served OpenAPI, driven with generated requests (schemathesis).

The app is the real service (ingest, read API, health) on a real database, with every
webhook secret and the API token set; half the read-API requests carry the token, so the
generated parameters get past the check. Whatever comes: no 5xx, answers that match the
documented status codes and content types, no traceback in the logs, and nothing stored,
since no generated delivery carries a valid signature.
"""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Iterator
from typing import Any
from urllib.parse import quote

import pytest
import schemathesis
from fastapi import FastAPI
from fastapi.testclient import TestClient
from schemathesis.core import NOT_SET
from sqlalchemy import Engine, select

from router.db.tables import inbox
from router.service import build_service
from router.settings import Settings
from tests.fuzzing import assert_no_traceback, fuzz
from tests.support import EXAMPLE_SCOPE, decide_stored
from tests.vendors import SECRETS, signed_headers

TOKEN = "openapi-fuzz-token"


@pytest.fixture
def app(db_url: str) -> FastAPI:
    settings = Settings(
        rules=EXAMPLE_SCOPE, database_url=db_url, api_token=TOKEN,
        **{f"{source}_webhook_secret": secret for source, secret in SECRETS.items()})
    return build_service(settings, run_worker=False)


ROUTES = [("POST", "/webhooks/{source}"), ("GET", "/healthz"), ("GET", "/readyz"),
          ("GET", "/metrics"), ("GET", "/api/v1/decisions"),
          ("GET", "/api/v1/decisions/{decision_id}"), ("GET", "/api/v1/escalations"),
          ("GET", "/api/v1/escalations/{escalation_id}"),
          ("GET", "/api/v1/escalations/{escalation_id}/review"), ("GET", "/api/v1/scope"),
          ("GET", "/api/v1/reports/monthly"), ("GET", "/api/v1/exceptions")]


@pytest.fixture(autouse=True)
def _no_traceback(caplog: pytest.LogCaptureFixture) -> Iterator[None]:
    caplog.set_level(logging.INFO)
    yield
    assert_no_traceback(caplog)


def test_every_route_of_the_schema_is_fuzzed(app: FastAPI) -> None:
    """A route missing from ROUTES would go untested: the list must be the schema's (but
    the dashboard's, which tests/test_pages_fuzz.py drives)."""
    served = {(method.upper(), path) for path, item in app.openapi()["paths"].items()
              for method, operation in item.items()
              if "dashboard" not in operation.get("tags", ())}
    assert served == set(ROUTES)


@pytest.mark.parametrize(("method", "path"), [r for r in ROUTES if r[0] == "GET"])
def test_no_generated_request_breaks_the_read_side(app: FastAPI, method: str,
                                                   path: str) -> None:
    """Half the requests carry the token, so their parameters get past the check."""
    def call(case: Any, flag: bool) -> None:
        if path.startswith("/api/") and flag:
            case.headers = {**(case.headers or {}), "Authorization": f"Bearer {TOKEN}"}
        case.call_and_validate()

    fuzz(schemathesis.openapi.from_asgi("/openapi.json", app)[path][method], call)


def test_generated_deliveries_are_stored_only_when_signed(app: FastAPI, db_url: str,
                                                          engine: Engine) -> None:
    """Unsigned (or wrongly signed) deliveries are refused and nothing is stored; half are
    signed with the source's secret, and the worker then decides or ignores each one."""
    operation = schemathesis.openapi.from_asgi("/openapi.json", app)["/webhooks/{source}"]["POST"]
    documented = {int(code) for code in app.openapi()["paths"]["/webhooks/{source}"]["post"]
                  ["responses"]}
    signed: set[str] = set()
    with TestClient(app) as client:
        def call(case: Any, flag: bool) -> None:
            if not flag:
                case.call_and_validate()
                return
            source = str(case.path_parameters.get("source"))
            payload = None if case.body is NOT_SET else case.body
            if source == "linear" and isinstance(payload, dict):
                payload["webhookTimestamp"] = int(time.time() * 1000)
            body = json.dumps(payload).encode()  # orjson cannot write ints past 64 bits
            delivery = f"fuzz-{len(signed)}-{time.monotonic_ns()}"
            headers = signed_headers(source, body, "issues", delivery) if source in SECRETS \
                else {}
            answer = client.post(f"/webhooks/{quote(source, safe='')}", content=body,
                                 headers=headers)
            assert answer.status_code in documented, (answer.status_code, answer.text)
            if answer.status_code in (200, 202) and answer.json()["status"] == "accepted":
                signed.add(delivery)

        fuzz(operation, call)
    with engine.connect() as conn:
        stored = set(conn.execute(select(inbox.c.delivery_id)).scalars())
    assert stored == signed and signed
    assert decide_stored(db_url) == len(signed)
    with engine.connect() as conn:
        assert set(conn.execute(select(inbox.c.status)).scalars()) == {"done"}
