"""Property tests on the pure edges: whatever arrives, the adapters' parsers, the signature
checks and the scope-note loader answer with their own error or a result, never another
exception (SPEC §8: no bad input breaks the service).

Inputs are arbitrary JSON and, more often useful, the real recorded deliveries with one
part replaced, removed or retyped, so the parsers are driven deep into their branches.
Example counts are bounded for CI (`FUZZ_EXAMPLES`, about 20 s in all here); set
`HYPOTHESIS_PROFILE=long` for a longer search.
"""

from __future__ import annotations

import copy
import hashlib
import hmac
import os
from datetime import UTC, datetime
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from adapters import ADAPTERS
from adapters.base import SignatureError, VerifyContext
from router.core.decide import decide
from router.core.model import Event, History, PayloadError
from router.scope.load import Scope, ScopeError, parse_scope
from tests.support import EXAMPLE_SCOPE, example_scope
from tests.vendors import SECRETS, SOURCES, event_of, fixtures, signature

settings.register_profile("ci", max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
                          deadline=None, suppress_health_check=[HealthCheck.too_slow],
                          derandomize=True, database=None)
settings.register_profile("long", max_examples=5000, deadline=None,
                          suppress_health_check=[HealthCheck.too_slow])
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

SCOPE: Scope = example_scope()
NOW = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
RECORDED = {source: [(event_of(p), orjson.loads(p.read_bytes())) for p in fixtures(source)]
            for source in SOURCES}

scalars = (st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=30)
           | st.sampled_from(["", "2026-11-21T10:00:00Z", "2026-11-21T10:00:00.000+0000",
                              "not a time", "open", "closed", "incident", "Issue", "P1",
                              "sha256=", "firstline/x"]))
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(st.text(max_size=12), inner, max_size=4),
                           max_leaves=20)


def _paths(value: Any, trail: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """List the path of every value inside a decoded JSON document."""
    found = [trail]
    if isinstance(value, dict):
        for key, inner in value.items():
            found += _paths(inner, (*trail, key))
    elif isinstance(value, list):
        for i, inner in enumerate(value):
            found += _paths(inner, (*trail, i))
    return found


@st.composite
def varied_deliveries(draw: st.DrawFn, source: str) -> tuple[str | None, Any]:
    """Draw a recorded delivery of `source` with up to three parts replaced or removed."""
    event, payload = draw(st.sampled_from(RECORDED[source]))
    payload = copy.deepcopy(payload)
    for _ in range(draw(st.integers(1, 3))):
        paths = [p for p in _paths(payload) if p]
        if not paths:
            break
        *parent_path, last = draw(st.sampled_from(paths))
        parent = payload
        for step in parent_path:
            parent = parent[step]
        if draw(st.booleans()) and isinstance(parent, dict):
            del parent[last]
        else:
            parent[last] = draw(json_values)
    header = draw(st.sampled_from([event, None, "issues", "pull_request", "ping", "push"]))
    return (header if source == "github" else None), payload


def _parse_and_decide(source: str, payload: Any, event_type: str | None) -> None:
    """Parse; an Event must also be decidable (decide is pure, and sees what parse made)."""
    try:
        event = ADAPTERS[source].parse(payload, event_type)  # type: ignore[index]
    except PayloadError:
        return
    assert isinstance(event, Event)
    decide(event, SCOPE, History(), NOW)


@given(source=st.sampled_from(SOURCES), payload=json_values,
       event_type=st.none() | st.text(max_size=20))
def test_any_json_parses_to_an_event_or_a_payload_error(source: str, payload: Any,
                                                        event_type: str | None) -> None:
    _parse_and_decide(source, payload, event_type)


@given(data=st.data(), source=st.sampled_from(SOURCES))
def test_varied_real_deliveries_parse_to_an_event_or_a_payload_error(
        data: st.DataObject, source: str) -> None:
    event_type, payload = data.draw(varied_deliveries(source))
    _parse_and_decide(source, payload, event_type)


header_values = st.text(max_size=80) | st.sampled_from(
    ["sha256=", "sha256=" + "0" * 64, "v1=" + "a" * 64, "v1=zz,v1=" + "b" * 64, "0" * 64,
     "sha512=" + "c" * 128, "SHA256=" + "F" * 64, " sha256=" + "1" * 64 + " "])


@given(source=st.sampled_from(SOURCES), body=st.binary(max_size=200),
       headers=st.dictionaries(st.sampled_from(["x-hub-signature-256", "x-hub-signature",
                                                "linear-signature", "x-pagerduty-signature",
                                                "x-github-delivery", "content-type"]),
                               header_values, max_size=4),
       secrets=st.lists(st.binary(max_size=40), max_size=3))
def test_random_signatures_are_refused_with_a_signature_error(
        source: str, body: bytes, headers: dict[str, str], secrets: list[bytes]) -> None:
    adapter = ADAPTERS[source]  # type: ignore[index]
    context = VerifyContext(secrets=secrets, now=NOW.timestamp())
    try:
        adapter.verify(body, headers, context)
    except SignatureError:
        return
    # Passing without a secret that signed this body would be a hole: prove one did.
    assert any(_signed_by(source, body, headers, s) for s in secrets), headers


def _signed_by(source: str, body: bytes, headers: dict[str, str], secret: bytes) -> bool:
    wanted = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return any(wanted in value.lower() for value in headers.values())


@given(source=st.sampled_from(SOURCES), data=st.data())
def test_correctly_signed_varied_deliveries_pass_or_fail_with_a_clear_error(
        source: str, data: st.DataObject) -> None:
    """A valid signature on any body: it passes, or (Linear) the age or JSON is refused."""
    _, payload = data.draw(varied_deliveries(source))
    if source == "linear" and isinstance(payload, dict) and data.draw(st.booleans()):
        payload["webhookTimestamp"] = int(NOW.timestamp() * 1000)
    body = orjson.dumps(payload) if data.draw(st.booleans()) else data.draw(st.binary())
    headers = {k.lower(): v for k, v in signature(source, body, SECRETS[source]).items()}
    context = VerifyContext(secrets=[b"old", SECRETS[source].encode()], now=NOW.timestamp())
    try:
        ADAPTERS[source].verify(body, headers, context)  # type: ignore[index]
    except SignatureError:
        assert source == "linear"  # only Linear refuses a good signature: a stale body
    except PayloadError:
        assert source == "linear"  # ...or one it cannot read the age of


EXAMPLE_TEXT = EXAMPLE_SCOPE.read_bytes()
yaml_bits = st.sampled_from([b"\n", b": ", b"- ", b"  ", b"{", b"}", b"[", b"]", b"&a ", b"*a",
                             b"<<: ", b"!!python/object:os.system ", b"!!binary ", b"!x ",
                             b"\t", b"'", b'"', b"#", b"---\n", b"...\n", b"%YAML 1.1\n",
                             b"? ", b"|\n", b">\n", b"\xff", b"\x00", b"9:00", b"0x1F"])


@st.composite
def varied_scope_notes(draw: st.DrawFn) -> bytes:
    """Draw the example scope note with a few bytes inserted, deleted or replaced."""
    text = bytearray(EXAMPLE_TEXT)
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        bit = draw(yaml_bits | st.binary(max_size=6))
        cut = draw(st.integers(0, 8))
        text[at:at + cut] = bit
    return bytes(text)


def _load(raw: bytes) -> None:
    try:
        parse_scope(raw, "fuzz.yaml")
    except ScopeError as exc:
        lines = exc.lines()
        assert lines and all(line.startswith("fuzz.yaml:") for line in lines)
        assert all(line.split(":")[1].isdigit() for line in lines), lines


@given(raw=st.binary(max_size=300))
def test_any_bytes_load_as_a_scope_or_a_scope_error(raw: bytes) -> None:
    _load(raw)


@given(raw=varied_scope_notes())
def test_varied_scope_notes_load_or_list_their_problems_by_line(raw: bytes) -> None:
    _load(raw)
