"""Start patience (#11: a worker restarted during an outage must not exit and leave its topics
unconsumed). The whole-process behaviour is shown by tests/faults, which restarts workers while
Kafka and PostgreSQL are down."""

from __future__ import annotations

import pytest

from streams.patience import patiently


def test_patiently_retries_until_the_step_works_and_gives_up_after_its_patience() -> None:
    calls: list[int] = []

    def flaky() -> str:
        calls.append(1)
        if len(calls) < 3:
            raise ConnectionError("not yet")
        return "up"

    assert patiently("a flaky thing", flaky, patience_s=30) == "up" and len(calls) == 3
    with pytest.raises(ConnectionError):
        patiently("a dead thing", lambda: (_ for _ in ()).throw(ConnectionError("down")), patience_s=0)
