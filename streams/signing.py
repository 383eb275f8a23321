"""HMAC-SHA256 request signatures with a replay window: one implementation for every direction.

Inbound webhooks (`RAGLOOP_V2`) and outbound callbacks (`RAGLOOP`) are signed with different
secrets (a callback receiver must not be able to call us), by the same code:

    X-Ragloop-Timestamp: 1718000000
    X-Ragloop-Delivery:  d-123                       (inbound; optional, but signed when sent)
    X-Ragloop-Signature: v2=<hex HMAC-SHA256(secret, f"{timestamp}.{delivery}\n{raw_body}")>   inbound
    X-Ragloop-Signature: v1=<hex HMAC-SHA256(secret, f"{timestamp}.{raw_body}")>                 callbacks

The timestamp is inside the signed message, so an old request cannot be replayed with a fresh
timestamp, and requests older (or newer) than the tolerance are refused even when correctly
signed. `v2` signs the delivery id too, so a captured request cannot be replayed inside the window
under a new delivery id (the delivery id is what makes a retry return the first task). The
delivery id ends at a newline, which no header value can hold, so no (delivery, body) pair can be
read two ways. Slack's Events API signs the same way with other names (`v0`, `v0:{ts}:{body}`), so
it is one more `SigningScheme` rather than another implementation.

    >>> headers = RAGLOOP.sign("s3cret", b'{"text": "hi"}', now=1718000000)
    >>> RAGLOOP.verify("s3cret", b'{"text": "hi"}', headers, now=1718000010)  # no exception: valid
    >>> RAGLOOP.verify("s3cret", b'{"text": "HI"}', headers, now=1718000010)
    Traceback (most recent call last):
    ...
    streams.signing.SignatureError: X-Ragloop-Signature does not match the body (was the body re-serialised, or the secret different?)
    >>> headers = RAGLOOP_V2.sign("s3cret", b'{"text": "hi"}', now=1718000000, delivery="d-1")
    >>> RAGLOOP_V2.verify("s3cret", b'{"text": "hi"}', headers | {"X-Ragloop-Delivery": "d-2"}, now=1718000010)
    Traceback (most recent call last):
    ...
    streams.signing.SignatureError: X-Ragloop-Signature does not match the body and X-Ragloop-Delivery (was the body re-serialised, or the secret different?)
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass

DEFAULT_TOLERANCE_S = 300


class SignatureError(Exception):
    """A request's signature is missing, malformed, wrong, or outside the replay window."""


@dataclass(frozen=True)
class SigningScheme:
    """Which headers carry the timestamp and signature, and how the signed message is laid out."""

    version: str
    timestamp_header: str
    signature_header: str
    separator: str  # between timestamp and body in the signed message
    prefix: str = ""  # before the timestamp in the signed message
    delivery_header: str | None = None  # when set, its value is signed too: f"{timestamp}{separator}{delivery}\n{body}"

    def signature(self, secret: str, timestamp: int | str, body: bytes, delivery: str = "") -> str:
        signed_delivery = f"{delivery}\n" if self.delivery_header else ""
        message = f"{self.prefix}{timestamp}{self.separator}{signed_delivery}".encode() + body
        return f"{self.version}=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()

    def sign(self, secret: str, body: bytes, *, now: float | None = None, delivery: str | None = None) -> dict[str, str]:
        """The headers to send with `body` (with `delivery`, its delivery header too, for a scheme that signs it)."""
        timestamp = int(time.time() if now is None else now)
        headers = {self.timestamp_header: str(timestamp), self.signature_header: self.signature(secret, timestamp, body, delivery or "")}
        if self.delivery_header and delivery is not None:
            headers[self.delivery_header] = delivery
        return headers

    def verify(self, secret: str, body: bytes, headers: Mapping[str, str], *, tolerance_s: float = DEFAULT_TOLERANCE_S,
               now: float | None = None) -> None:
        """Raise `SignatureError` unless `body` was signed with `secret` within `tolerance_s` of now.

        `headers` is looked up case-insensitively (a plain dict or Starlette's headers both work).
        The signature header may list several comma-separated signatures, so a sender can sign with
        the old and the new secret while a rotation is under way.
        """
        lowered = {k.lower(): v for k, v in headers.items()}
        timestamp = lowered.get(self.timestamp_header.lower())
        presented = lowered.get(self.signature_header.lower())
        if not timestamp or not presented:
            raise SignatureError(f"missing {self.timestamp_header} or {self.signature_header} header")
        if not timestamp.isdigit():
            raise SignatureError(f"{self.timestamp_header} must be unix seconds, got {timestamp[:40]!r}")
        skew = abs((time.time() if now is None else now) - int(timestamp))
        if skew > tolerance_s:
            raise SignatureError(f"{self.timestamp_header} is {skew:.0f} s away from now, outside the {tolerance_s:g} s "
                                 "replay window (a replayed request, or the sender's clock is off)")
        delivery = lowered.get(self.delivery_header.lower(), "") if self.delivery_header else ""
        expected = self.signature(secret, timestamp, body, delivery)
        # Compare every candidate (no early exit) in constant time: timing reveals nothing.
        matched = False
        for candidate in presented.split(","):
            matched |= hmac.compare_digest(candidate.strip().encode(), expected.encode())
        if not matched:
            signed = f"the body and {self.delivery_header}" if self.delivery_header else "the body"
            raise SignatureError(f"{self.signature_header} does not match {signed} (was the body re-serialised, or the secret different?)")


DELIVERY_HEADER = "X-Ragloop-Delivery"  # unique per delivery, repeated on retries: the receiver's de-duplication key
RAGLOOP = SigningScheme(version="v1", timestamp_header="X-Ragloop-Timestamp", signature_header="X-Ragloop-Signature", separator=".")
RAGLOOP_V2 = SigningScheme(version="v2", timestamp_header="X-Ragloop-Timestamp", signature_header="X-Ragloop-Signature", separator=".",
                           delivery_header=DELIVERY_HEADER)
SLACK = SigningScheme(version="v0", timestamp_header="X-Slack-Request-Timestamp", signature_header="X-Slack-Signature",
                      separator=":", prefix="v0:")


def keyed_tag(secret: str, message: str, *, length: int = 32) -> str:
    """A short HMAC of `message`: proves a value was minted by a holder of `secret` (e.g. a Slack reply address)."""
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()[:length]
