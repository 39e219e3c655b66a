"""schemathesis against the real server's /openapi.json: no input may get a 5xx.

Every operation in the document is called with input schemathesis generates
from it, both valid and invalid (wrong types, out-of-range numbers, bodies
that are not JSON or not UTF-8), and the one check is that no answer is a
server error. The example count is bounded so the run takes seconds.

schemathesis' own pytest loader for a schema served by a fixture
(``schemathesis.pytest.from_fixture``) does not run on pytest 9.2 (it sets
``request.node._nodeid``, which is gone), so this uses its documented
strategies (``APIOperation.as_strategy``) under a plain hypothesis ``@given``.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error

from tests.e2e.server import QuartetServer

#: Examples per operation and generation mode (positive and negative).
EXAMPLES = 40


@pytest.fixture(scope="module")
def fuzzed_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuartetServer]:
    """A server of its own: the fuzzer's sessions, skills and keys touch no other test,
    and per-key rate limits are off so that every request reaches its handler."""
    server = QuartetServer(
        tmp_path_factory.mktemp("fuzz"),
        env={"QUARTET_REQUESTS_PER_MINUTE": "0", "QUARTET_MESSAGES_PER_MINUTE": "0"},
    ).start()
    yield server
    server.stop()


def test_no_generated_input_gets_a_server_error(fuzzed_server: QuartetServer) -> None:
    schema = schemathesis.openapi.from_url(f"{fuzzed_server.base_url}/openapi.json")
    schema.config.update(headers={"X-API-Key": fuzzed_server.api_key})
    failures: list[str] = []
    tried = 0
    for result in schema.get_all_operations():
        operation = result.ok()
        for mode in GenerationMode:

            @given(case=operation.as_strategy(mode))
            @settings(
                max_examples=EXAMPLES,
                deadline=None,
                database=None,
                suppress_health_check=list(HealthCheck),
            )
            def call(case: schemathesis.Case) -> None:
                case.call_and_validate(checks=[not_a_server_error])

            tried += 1
            try:
                call()
            except Unsatisfiable:
                pass  # nothing in this operation can be made invalid (no parameters, no body)
            # schemathesis reports failures as a FailureGroup, a BaseExceptionGroup.
            except (Exception, BaseExceptionGroup) as exc:
                failures.append(f"{operation.label} ({mode.value}): {exc}")
    assert tried >= 2 * 15, "the OpenAPI document lost operations"
    assert not failures, "\n\n".join(failures)
    assert "Traceback" not in fuzzed_server.output()
