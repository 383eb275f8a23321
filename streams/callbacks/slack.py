"""Slack replies: the `slack://` address a Slack question carries, and the answer posted into its thread.

A `slack://` address carries an HMAC tag minted by the Slack adapter (`streams/gateway/routes/webhooks.py`)
with the bot token, so an API caller cannot make the bot post into arbitrary channels by naming one
as its callback.
"""

from __future__ import annotations

import hmac
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

import httpx

from schemas.settings import Settings
from schemas.tables import TaskRecord
from streams.callbacks.outcome import USER_AGENT, Outcome
from streams.signing import keyed_tag

# Slack errors that no retry can fix; anything else (ratelimited, internal_error, network) is retried.
SLACK_PERMANENT_ERRORS = frozenset({"channel_not_found", "not_in_channel", "is_archived", "invalid_auth", "not_authed",
                                    "account_inactive", "token_revoked", "missing_scope", "msg_too_long", "no_text"})


def slack_reply_url(settings: Settings, channel: str, thread_ts: str) -> str:
    """The `callback_url` of a task asked from Slack: reply into `channel`, in the thread `thread_ts`."""
    return f"slack://{quote(channel, safe='')}/{quote(thread_ts, safe='')}?sig={_slack_tag(settings, channel, thread_ts)}"


def _slack_tag(settings: Settings, channel: str, thread_ts: str) -> str:
    token = settings.slack.bot_token.get_secret_value() if settings.slack.bot_token else ""
    return keyed_tag(token, f"slack-reply:{channel}/{thread_ts}")


def _slack_target(settings: Settings, url: str) -> tuple[str, str]:
    """(channel, thread_ts) of a `slack://` address; ValueError unless the Slack adapter minted it."""
    parts = urlsplit(url)
    channel, thread_ts = unquote(parts.netloc), unquote(parts.path.lstrip("/"))
    tag = parse_qs(parts.query).get("sig", [""])[0]
    if not channel or not thread_ts or not hmac.compare_digest(tag, _slack_tag(settings, channel, thread_ts)):
        raise ValueError(f"refusing {url!r}: slack:// callbacks are only valid as minted by the Slack adapter")
    return channel, thread_ts


def slack_text(task: TaskRecord) -> str:
    """What the bot says in the thread: the answer and its sources, or why there is none."""
    if task.status == "succeeded" and task.result:
        text = _escape(task.result.answer)
        titles = [c.title or c.document_id for c in task.result.citations]
        if titles:
            text += "\n\nSources: " + ", ".join(f"[{n}] {_escape(t)}" for n, t in enumerate(titles, start=1))
        return text
    if task.status == "cancelled":
        return "This question was cancelled before it was answered."
    return f":warning: Sorry, I could not answer this: {_escape(task.error or 'unknown error')}"


def _escape(text: str) -> str:
    # Slack reads &, < and > as markup (links, mentions); everything else is literal.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


async def post_to_slack(settings: Settings, task: TaskRecord, url: str) -> Outcome:
    """Answer `task` in the Slack thread its `slack://` address names, through `chat.postMessage`."""
    if settings.slack.bot_token is None:
        return Outcome(False, False, "RAGLOOP_SLACK_BOT_TOKEN is not set: cannot reply on Slack")
    try:
        channel, thread_ts = _slack_target(settings, url)
    except ValueError as error:
        return Outcome(False, False, str(error))
    endpoint = settings.slack.api_url.rstrip("/") + "/chat.postMessage"
    headers = {"Authorization": f"Bearer {settings.slack.bot_token.get_secret_value()}", "User-Agent": USER_AGENT}
    payload = {"channel": channel, "text": slack_text(task), "thread_ts": thread_ts}
    try:
        async with httpx.AsyncClient(trust_env=False, timeout=settings.callbacks.timeout_s) as client:
            response = await client.post(endpoint, json=payload, headers=headers)
    except httpx.HTTPError as error:
        return Outcome(False, True, f"chat.postMessage: {type(error).__name__}: {error}")
    reply: dict[str, Any] = response.json() if response.headers.get("content-type", "").startswith("application/json") else {}
    if response.is_success and reply.get("ok"):
        return Outcome(True, False, f"posted to Slack channel {channel}")
    error_name = str(reply.get("error", f"HTTP {response.status_code}"))
    return Outcome(False, error_name not in SLACK_PERMANENT_ERRORS, f"chat.postMessage: {error_name}")
