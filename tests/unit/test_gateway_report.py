"""`GET /v1/report`: an HTML page, and with auth on only the calling key's tenant's numbers, whatever it asks for."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr

from schemas.settings import Settings
from streams.gateway.app import create_app
from streams.runtime import Runtime
from tests import report_rows
from tests.report_rows import ACME_V1, ACME_V2, GLOBEX_SECRET, GLOBEX_V1

ACME, GLOBEX = {"Authorization": "Bearer key-acme"}, {"X-API-Key": "key-globex"}


def serve(settings: Settings) -> Iterator[TestClient]:
    runtime = Runtime(settings, roles=[])
    with TestClient(create_app(runtime)) as client:
        report_rows.seed(runtime.stores.db)
        yield client


@pytest.fixture
def keyed(settings: Settings) -> Iterator[TestClient]:
    yield from serve(settings.override(auth="on", api_keys=SecretStr("key-acme=acme,key-globex=globex")))


@pytest.fixture
def open_(settings: Settings) -> Iterator[TestClient]:
    yield from serve(settings.override(auth="off"))


def shows_acme(html: str) -> bool:
    return ACME_V1 in html and ACME_V2 in html and "token_f1 dropped" in html


def shows_globex(html: str) -> bool:
    return GLOBEX_V1 in html or GLOBEX_SECRET in html or "globex_number" in html or "globex_steps" in html


def test_the_report_is_an_html_page_of_the_key_s_tenant(keyed: TestClient) -> None:
    reply = keyed.get("/v1/report", headers=ACME)
    assert reply.status_code == 200 and reply.headers["content-type"].startswith("text/html")
    assert reply.text.startswith("<!doctype html>") and 'id="plot-quality"' in reply.text
    assert shows_acme(reply.text) and not shows_globex(reply.text)


def test_a_key_cannot_ask_for_another_tenant_s_report(keyed: TestClient) -> None:
    reply = keyed.get("/v1/report", params={"tenant": "globex"}, headers=ACME)
    assert reply.status_code == 200 and shows_acme(reply.text) and not shows_globex(reply.text)
    other = keyed.get("/v1/report", params={"tenant": "acme"}, headers=GLOBEX)
    assert shows_globex(other.text) and ACME_V1 not in other.text and ACME_V2 not in other.text and "NaN" not in other.text


def test_the_report_needs_a_key_when_auth_is_on(keyed: TestClient) -> None:
    reply = keyed.get("/v1/report")
    assert reply.status_code == 401 and "API key" in reply.json()["detail"]


def test_without_auth_the_report_covers_every_tenant_or_the_one_asked_for(open_: TestClient) -> None:
    every = open_.get("/v1/report").text
    assert shows_acme(every) and shows_globex(every)
    acme = open_.get("/v1/report", params={"tenant": "acme"}).text
    assert shows_acme(acme) and not shows_globex(acme)


def test_a_tenant_longer_than_an_identifier_is_422(open_: TestClient) -> None:
    reply = open_.get("/v1/report", params={"tenant": "x" * 201})
    assert reply.status_code == 422 and "tenant" in reply.json()["error"]
