from __future__ import annotations

from sqlalchemy import select

from discretion.api import TOKEN_PREFIX, Tokens
from discretion.store._schema import api_tokens


def test_a_token_is_shown_once_and_kept_only_as_its_digest(store, clock):
    tokens = Tokens(store, clock=clock)
    secret, identity = tokens.create(subject_id="tina", role="tier1", label="laptop")
    assert secret.startswith(TOKEN_PREFIX)
    assert len(secret) > 40
    with store.engine.connect() as connection:
        [row] = connection.execute(select(api_tokens)).all()
    assert secret not in [str(value) for value in row]
    assert row.token_hash != secret
    assert len(row.token_hash) == 64
    found = tokens.authenticate(secret)
    assert found == identity
    assert (found.subject_id, found.role, found.is_ai, found.label) == (
        "tina",
        "tier1",
        False,
        "laptop",
    )
    assert found.actor().model_dump() == {"id": "tina", "role": "tier1", "is_ai": False}


def test_unknown_malformed_and_revoked_tokens_identify_nobody(store, clock):
    tokens = Tokens(store, clock=clock)
    secret, identity = tokens.create(subject_id="bot-1", role="ai_agent", is_ai=True)
    assert tokens.authenticate(secret + "x") is None
    assert tokens.authenticate("Bearer " + secret) is None
    assert tokens.authenticate(secret[len(TOKEN_PREFIX) :]) is None
    assert tokens.list() == [identity]
    assert tokens.revoke(identity.token_id) is True
    assert tokens.revoke(identity.token_id) is False
    assert tokens.authenticate(secret) is None
    assert tokens.get(identity.token_id) is None
    assert tokens.list() == []
