"""Request signatures: v1 (outbound callbacks), v2 (inbound webhooks, delivery id signed), plus Slack's variant."""

from __future__ import annotations

import hashlib
import hmac

import pytest

from streams.signing import RAGLOOP, RAGLOOP_V2, SLACK, SignatureError

SECRET = "s3cret"
BODY = b'{"text": "What is the capital of France?"}'
NOW = 1_718_000_000

# Slack's worked example ("Verifying requests from Slack", api.slack.com / docs.slack.dev).
SLACK_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
SLACK_TIMESTAMP = "1531420618"
SLACK_BODY = (b"token=xyzz0WbapA4vBCDEFasx0q6G&team_id=T1DC2JH3J&team_domain=testteamnow&channel_id=G8PSS9T3V&channel_name=foobar"
              b"&user_id=U2CERLKJA&user_name=roadrunner&command=%2Fwebhook-collect&text=&response_url=https%3A%2F%2Fhooks.slack.com"
              b"%2Fcommands%2FT1DC2JH3J%2F397700885554%2F96rGlfmibIGlgcZRskXaIFfN&trigger_id=398738663015.47445629121.803a0bc887a14d10d2c447fce8b6703c")
SLACK_SIGNATURE = "v0=a2114d57b48eac39b9ad189dd8316235a7b4a8d21a10bd27519666489c69b503"


def test_signature_is_hmac_sha256_of_timestamp_dot_body() -> None:
    headers = RAGLOOP.sign(SECRET, BODY, now=NOW)
    expected = hmac.new(SECRET.encode(), f"{NOW}.".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers == {"X-Ragloop-Timestamp": str(NOW), "X-Ragloop-Signature": f"v1={expected}"}


def test_signed_request_is_accepted_within_the_window() -> None:
    RAGLOOP.verify(SECRET, BODY, RAGLOOP.sign(SECRET, BODY, now=NOW), now=NOW + 299)


def test_header_names_are_matched_case_insensitively() -> None:
    headers = {k.lower(): v for k, v in RAGLOOP.sign(SECRET, BODY, now=NOW).items()}
    RAGLOOP.verify(SECRET, BODY, headers, now=NOW)


def test_tampered_body_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        RAGLOOP.verify(SECRET, BODY.replace(b"France", b"Spain"), RAGLOOP.sign(SECRET, BODY, now=NOW), now=NOW)


def test_wrong_secret_is_refused() -> None:
    with pytest.raises(SignatureError, match="does not match"):
        RAGLOOP.verify("other", BODY, RAGLOOP.sign(SECRET, BODY, now=NOW), now=NOW)


def test_correctly_signed_but_stale_request_is_refused_as_a_replay() -> None:
    with pytest.raises(SignatureError, match="replay window"):
        RAGLOOP.verify(SECRET, BODY, RAGLOOP.sign(SECRET, BODY, now=NOW), now=NOW + 301)


def test_timestamp_from_the_future_is_refused_too() -> None:
    with pytest.raises(SignatureError, match="replay window"):
        RAGLOOP.verify(SECRET, BODY, RAGLOOP.sign(SECRET, BODY, now=NOW + 3600), now=NOW)


def test_window_is_configurable() -> None:
    headers = RAGLOOP.sign(SECRET, BODY, now=NOW)
    RAGLOOP.verify(SECRET, BODY, headers, now=NOW + 1000, tolerance_s=1200)
    with pytest.raises(SignatureError):
        RAGLOOP.verify(SECRET, BODY, headers, now=NOW + 20, tolerance_s=10)


def test_a_replayed_signature_with_a_fresh_timestamp_is_refused() -> None:
    headers = RAGLOOP.sign(SECRET, BODY, now=NOW) | {"X-Ragloop-Timestamp": str(NOW + 1000)}
    with pytest.raises(SignatureError, match="does not match"):
        RAGLOOP.verify(SECRET, BODY, headers, now=NOW + 1000)


@pytest.mark.parametrize("headers", [{}, {"X-Ragloop-Timestamp": str(NOW)}, {"X-Ragloop-Signature": "v1=00"}])
def test_missing_headers_are_refused(headers: dict[str, str]) -> None:
    with pytest.raises(SignatureError, match="missing"):
        RAGLOOP.verify(SECRET, BODY, headers, now=NOW)


def test_timestamp_must_be_unix_seconds() -> None:
    headers = RAGLOOP.sign(SECRET, BODY, now=NOW) | {"X-Ragloop-Timestamp": "2024-06-10T00:00:00Z"}
    with pytest.raises(SignatureError, match="unix seconds"):
        RAGLOOP.verify(SECRET, BODY, headers, now=NOW)


def test_any_of_several_signatures_may_match_during_a_secret_rotation() -> None:
    old = RAGLOOP.signature("old", NOW, BODY)
    new = RAGLOOP.signature(SECRET, NOW, BODY)
    RAGLOOP.verify(SECRET, BODY, {"X-Ragloop-Timestamp": str(NOW), "X-Ragloop-Signature": f"{old}, {new}"}, now=NOW)


def test_slack_scheme_reproduces_slacks_documented_example() -> None:
    assert SLACK.signature(SLACK_SECRET, SLACK_TIMESTAMP, SLACK_BODY) == SLACK_SIGNATURE
    SLACK.verify(SLACK_SECRET, SLACK_BODY, {"X-Slack-Request-Timestamp": SLACK_TIMESTAMP, "X-Slack-Signature": SLACK_SIGNATURE},
                 now=int(SLACK_TIMESTAMP) + 10)


def test_slack_example_is_refused_five_minutes_later() -> None:
    with pytest.raises(SignatureError, match="replay window"):
        SLACK.verify(SLACK_SECRET, SLACK_BODY, {"X-Slack-Request-Timestamp": SLACK_TIMESTAMP, "X-Slack-Signature": SLACK_SIGNATURE},
                     now=int(SLACK_TIMESTAMP) + 301)


# --- v2: inbound webhooks sign the delivery id too --------------------------------------------------------

def test_v2_signature_is_hmac_sha256_of_timestamp_dot_delivery_newline_body() -> None:
    headers = RAGLOOP_V2.sign(SECRET, BODY, now=NOW, delivery="d-1")
    expected = hmac.new(SECRET.encode(), f"{NOW}.d-1\n".encode() + BODY, hashlib.sha256).hexdigest()
    assert headers == {"X-Ragloop-Timestamp": str(NOW), "X-Ragloop-Signature": f"v2={expected}", "X-Ragloop-Delivery": "d-1"}
    RAGLOOP_V2.verify(SECRET, BODY, headers, now=NOW)


@pytest.mark.parametrize("change", [{"X-Ragloop-Delivery": "d-2"}, {"X-Ragloop-Delivery": ""}, {"X-Ragloop-Delivery": "d-1.x"}])
def test_v2_refuses_a_replay_under_another_delivery_id(change: dict[str, str]) -> None:
    headers = RAGLOOP_V2.sign(SECRET, BODY, now=NOW, delivery="d-1") | change
    with pytest.raises(SignatureError, match="does not match the body and X-Ragloop-Delivery"):
        RAGLOOP_V2.verify(SECRET, BODY, headers, now=NOW)


def test_v2_without_a_delivery_id_signs_an_empty_one() -> None:
    headers = RAGLOOP_V2.sign(SECRET, BODY, now=NOW)
    assert "X-Ragloop-Delivery" not in headers
    RAGLOOP_V2.verify(SECRET, BODY, headers, now=NOW)
    with pytest.raises(SignatureError):
        RAGLOOP_V2.verify(SECRET, BODY, headers | {"X-Ragloop-Delivery": "new"}, now=NOW)
