"""Schemathesis against the served OpenAPI document of the real gateway, auth on (issue #11, proof by
fuzzing): every operation, valid and invalid inputs, a valid API key. Every 5xx is a bug: the run
prints the requests made and the server errors found, and asserts 0. Valid responses must also
match the documented schema.

The gateway runs over a Runtime with no worker roles (memory:// broker, embedded search, SQLite in
tmp): requests are accepted and queued, nothing generates, so a run is cheap. Waiting requests
(`?wait=true`, `/v1/chat/completions`) are bounded by a small timeout instead of a model's answer.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings as hsettings
from hypothesis.errors import Unsatisfiable
from pydantic import SecretStr
from schemathesis import GenerationMode
from schemathesis.specs.openapi.checks import response_schema_conformance

from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.gateway.server import serve_in_thread
from streams.runtime import Runtime

KEY = "fuzz-key"
AUTH = {"Authorization": f"Bearer {KEY}"}
EXAMPLES = 25  # per operation and mode: the whole file stays within a few minutes on two cores
CLIENT_TIMEOUT_S = 3.0
# Known bugs other branches of issue #11 fix; excluded here so this suite proves the rest.
# Operations left out of fuzzing, each with the bug that keeps it out (none now: the last, an unknown
# task's events answering 200 and then aborting, is a 404 since #11 item 15).
KNOWN: dict[tuple[str, str], str] = {}
# Answers that wait for a model; with no agent they end at the client's timeout, which is no server error.
WAITING = {("POST", "/v1/chat/completions")}


@dataclass
class Tally:
    requests: int = 0
    server_errors: list[str] = field(default_factory=list)
    nonconforming: list[str] = field(default_factory=list)
    waited: int = 0


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    home = tmp_path_factory.mktemp("fuzz") / "home"
    settings = Settings(home=home, broker={"url": "memory://"}, search={"url": "embedded://"}, workers={"retry_backoff_s": 0.05}).override(
        auth="on", api_keys=SecretStr(f"{KEY}=tenantA|alice|team-a, other-key=tenantB"), webhook_secret=SecretStr("whsec"))
    with serve_in_thread(create_app(Runtime(settings, roles=[]))) as url:
        yield url


def _bounded(case: schemathesis.Case) -> None:
    """A `?wait=true` waits for an agent that does not run here: bound it."""
    if isinstance(case.query, dict) and str(case.query.get("wait", "")).lower() in ("true", "1", "yes", "on"):
        case.query["timeout"] = 0.1


def fuzz(operation: schemathesis.APIOperation, mode: GenerationMode, served: str, session: requests.Session, tally: Tally) -> None:
    """Send ``operation``'s generated cases in one mode; tally the server errors and schema mismatches."""
    route = (operation.method.upper(), operation.path)

    @hsettings(max_examples=5 if route in WAITING else EXAMPLES, deadline=None, derandomize=True, database=None,
               suppress_health_check=list(HealthCheck))
    @given(operation.as_strategy(generation_mode=mode))
    def run(case: schemathesis.Case) -> None:
        _bounded(case)
        tally.requests += 1
        try:
            response = case.call(base_url=served, session=session, headers=AUTH, timeout=CLIENT_TIMEOUT_S)
        except requests.exceptions.ReadTimeout:
            assert route in WAITING, f"{case.method} {case.formatted_path} did not answer in {CLIENT_TIMEOUT_S}s"
            tally.waited += 1
            return
        if response.status_code >= 500:
            tally.server_errors.append(f"{response.status_code} {case.as_curl_command(headers=AUTH)}\n  {response.text[:300]}")
        elif mode == GenerationMode.POSITIVE and response.status_code < 300:
            try:
                case.validate_response(response, checks=[response_schema_conformance], headers=AUTH)
            except AssertionError as error:
                tally.nonconforming.append(f"{case.method} {case.formatted_path}: {str(error)[:300]}")

    try:
        run()
    except Unsatisfiable:  # e.g. no invalid input exists for an operation without parameters
        pass


def test_no_operation_answers_a_server_error_and_valid_answers_match_the_schema(served: str) -> None:
    schema = schemathesis.openapi.from_url(f"{served}/openapi.json")
    tally, session = Tally(), requests.Session()
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 15, "the whole API is fuzzed"
    for operation in operations:
        if (operation.method.upper(), operation.path) not in KNOWN:
            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz(operation, mode, served, session, tally)
    print(f"\nAPI fuzzing: {tally.requests} requests over {len(operations)} operations, {len(tally.server_errors)} server errors, "
          f"{len(tally.nonconforming)} schema mismatches, {tally.waited} waits cut at {CLIENT_TIMEOUT_S}s")
    assert not tally.server_errors, "server errors:\n" + "\n".join(tally.server_errors[:20])
    assert not tally.nonconforming, "answers that do not match the documented schema:\n" + "\n".join(tally.nonconforming[:20])


def test_an_unknown_tasks_events_are_a_404(served: str) -> None:
    reply = requests.get(f"{served}/v1/tasks/no-such-task/events", headers=AUTH, timeout=CLIENT_TIMEOUT_S)
    assert reply.status_code == 404
