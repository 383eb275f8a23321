"""tests/e2e/conftest.die_with_parent: role processes started by a test die when the test process is killed,
instead of running on against the shared services."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap

import pytest

from tests.support import eventually

PARENT = textwrap.dedent("""
    import subprocess, sys, time
    from tests.e2e.conftest import die_with_parent
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"], preexec_fn=die_with_parent)
    print(child.pid, flush=True)
    time.sleep(60)
""")


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    with open(f"/proc/{pid}/stat") as stat:  # a zombie waits for its reaper but runs no more
        return stat.read().split()[2] != "Z"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="prctl(PR_SET_PDEATHSIG) is Linux's")
async def test_a_child_dies_when_its_test_process_is_killed() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE, text=True, cwd=os.getcwd())
    child = int(parent.stdout.readline())  # type: ignore[union-attr]
    assert alive(child)
    parent.send_signal(signal.SIGKILL)  # no cleanup runs in the parent
    parent.wait()
    await eventually(lambda: not alive(child), timeout=10, what="the child to die with its parent")
