"""Soak: drive the whole loop with a mixed load, then account for every accepted request.

`load` sends documents, deletes, chats and feedback through the HTTP API and remembers what was
accepted; `ledger` waits for the effects and counts them (lost, duplicated, stuck); `fleet` runs
the gateway and each worker role as its own process, so a fault test can SIGKILL and restart them.
`ragloop soak` and tests/faults/ share all three.
"""
