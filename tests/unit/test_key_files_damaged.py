"""The gateway's key files of every shape, generated: a token file (``--tokens``), a CDS
Hooks client file and a JWK Set (one fetched from an EHR, too). Each is read, or refused
with a ValueError naming the file and what is wrong; never another exception, which would
stop ``vitalgru serve`` with a traceback, or, for a token file edited while the gateway
runs, fail a request instead of leaving the tokens read before in force."""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric import ec
from damage_kit import FUZZ, JSON, replaced
from hypothesis import given

from pipelines.access import ROLES, TokenFile, TokenTable
from pipelines.cds_tokens import CdsClients, jwk_of

TOKENS = {"tokens": [
    {"name": "ward-4", "role": "reader", "sha256": "a" * 64},
    {"name": "feed", "role": "feed", "sha256": "b" * 64, "expires": "2030-01-01T00:00:00+00:00",
     "patients": ["icu-*"]},
]}  # fmt: skip
KEY = jwk_of(ec.generate_private_key(ec.SECP384R1()).public_key(), "k1")
CLIENTS = {"clients": [{"name": "ehr", "iss": "https://ehr.example.org", "jwks": {"keys": [KEY]}}]}


@FUZZ
@given(content=replaced(TOKENS) | JSON)
def test_a_token_file_of_any_shape_is_read_or_refused_and_an_edit_never_fails_a_request(
    content: Any,
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "tokens.json"
        path.write_text(json.dumps(content))
        try:
            table = TokenTable.from_file(path)
        except ValueError as e:
            assert str(path) in str(e)
        else:
            assert all(c.role in ROLES for c in table.credentials)
        path.write_text(json.dumps(TOKENS))
        running = TokenFile(path, check_s=0)
        path.write_text(json.dumps(content) + " ")  # an edit while the gateway runs
        assert running.current() is not None  # the new tokens, or those read before
        assert running.errors + running.reloads == 1


@FUZZ
@given(spec=replaced(CLIENTS) | JSON)
def test_a_cds_client_file_of_any_shape_is_read_or_refused(spec: Any) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "cds-clients.json"
        path.write_text(json.dumps(spec))
        try:
            clients = CdsClients.from_file(path)
        except ValueError as e:
            assert str(path) in str(e)
        else:
            assert all(c.keys or c.jwks_url for c in clients.by_iss.values())
