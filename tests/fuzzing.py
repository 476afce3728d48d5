"""Shared by the schemathesis tests: bounded runs of an operation's generated requests,
and the check that nothing logged a traceback meanwhile."""

from __future__ import annotations

import logging
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode

EXAMPLES = int(os.environ.get("OPENAPI_FUZZ_EXAMPLES", "25"))  # per route, in CI


def fuzz(operation: Any, test: Any) -> None:
    """Run `test(case, flag)` on generated cases, valid and invalid, a bounded number."""
    modes = [operation.as_strategy(generation_mode=mode) for mode in GenerationMode]
    run = given(case=st.one_of(modes), flag=st.booleans())(test)
    settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
             suppress_health_check=list(HealthCheck))(run)()


def assert_no_traceback(caplog: pytest.LogCaptureFixture) -> None:
    """Fail on any record with a traceback or at ERROR and above."""
    broken = [r for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]
    assert not broken, [r.getMessage() for r in broken]
