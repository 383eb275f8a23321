"""agents.memory.thread_id: one conversation's checkpointer key can never be another's."""

from __future__ import annotations

import pytest

from agents.memory import thread_id
from schemas.events import principals_fingerprint

ALICE = principals_fingerprint(["alice"])


@pytest.mark.parametrize(("one", "other"), [
    (("default", "held", ["alice"]), ("default", f"held/{ALICE}", [])),   # another principal's turns
    (("acme", "x/y", []), ("acme/x", "y", [])),                             # another tenant's turns
    (("acme", "a/b", ["c"]), ("acme/a", "b", ["c"])),
    (("t", "c", ["a,b"]), ("t", "c", ["a", "b"])),                          # principals containing a separator
])
def test_tuples_that_a_joined_key_merged_get_different_keys(one, other):
    assert thread_id(*one) != thread_id(*other)


def test_the_same_principals_in_any_order_or_repeated_keep_their_conversation():
    assert thread_id("t", "c", ["b", "a", "a"]) == thread_id("t", "c", ["a", "b"])
    assert thread_id("t", "c") == thread_id("t", "c", []) != thread_id("t", "c", ["a"])
