"""Callbacks: telling whoever asked that a chat task finished, and recording whether they heard.

A task with an `http(s)://` `callback_url` receives the finished task (the JSON of
`GET /v1/tasks/{id}`) as a POST signed exactly like inbound webhooks (`streams/signing.py`), with
`X-Ragloop-Delivery: <task_id>` for the receiver to de-duplicate on (`webhook.py`). A task that
came from Slack carries `slack://<channel>/<thread_ts>?sig=…` instead and is answered in its thread
through `chat.postMessage` (`slack.py`). Succeeded, failed and cancelled tasks all get their
callback; its delivery row (`streams/callback_deliveries.py`) records the status (pending →
delivering → delivered | failed) and attempts. `sender.py` claims, retries and records each delivery; the callbacks role
(`streams/workers/callbacks.py`) only starts them.
"""
