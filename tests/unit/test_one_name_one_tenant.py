"""One name for one thing and one tenant across the doors: the HTTP API takes a document's
`document_id` as events do (`id` stays accepted), and the CLI acts as an API key's tenant and
principals exactly as the HTTP API does for that key."""

from __future__ import annotations

import pytest
import typer
from pydantic import SecretStr, ValidationError

from schemas.settings import Settings
from streams.cli.options import acting_as
from streams.gateway.api_models import DocumentIn


def test_a_document_is_named_document_id_over_http_and_the_old_id_still_works() -> None:
    assert DocumentIn.model_validate({"document_id": "ostra", "text": "x"}).document_id == "ostra"
    assert DocumentIn.model_validate({"id": "ostra", "text": "x"}).document_id == "ostra"
    with pytest.raises(ValidationError, match="document_ID"):
        DocumentIn.model_validate({"document_ID": "ostra", "text": "x"})


def test_the_cli_acts_as_the_api_keys_tenant_and_principals() -> None:
    settings = Settings(security={"api_keys": SecretStr("demo-key=acme,hr-key=acme|team-hr")})
    assert acting_as(settings, "default", ["someone"], None) == ("default", ["someone"])
    assert acting_as(settings, "default", None, "demo-key") == ("acme", [])
    assert acting_as(settings, "other", ["someone"], "hr-key") == ("acme", ["team-hr"])
    with pytest.raises(typer.BadParameter, match="RAGLOOP_API_KEYS"):
        acting_as(settings, "default", None, "stolen-key")
