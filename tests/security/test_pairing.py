"""Pairing codes: short, single use, valid 10 minutes, stored hashed, rate-limited per address,
traded for a fresh token (which rotates an existing agent's) at POST /agent/pair."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import text, update

from app import db, pairing
from app.models import Agent, PairingCode, hash_token, utcnow
from tests.sockets import app_with
from tests.test_cli import agent_for_token, assert_one_line_failure, invoke, last_line

CODE = re.compile(r"[2-9A-HJKMNP-TV-Z]{5}-[2-9A-HJKMNP-TV-Z]{5}")


def pair_code(runner, username, agent_name):
    """`flask agents pair USERNAME AGENT_NAME`: the code is the last line."""
    result = invoke(runner, "agents", "pair", username, agent_name)
    assert result.exit_code == 0, result.output
    return last_line(result.stdout)


def trade(client, code, address="192.0.2.10"):
    return client.post("/agent/pair", json={"code": code}, environ_base={"REMOTE_ADDR": address})


def refused(reply, status, code):
    body = reply.get_json()
    assert reply.status_code == status and body["ok"] is False and body["error"]["code"] == code, body
    return body["error"]["message"]


def expire(app, code):
    with app.app_context():
        digest = pairing.hash_code(pairing.normalise(code))
        db.session.execute(
            update(PairingCode).where(PairingCode.code_hash == digest).values(expires_at=utcnow())
        )
        db.session.commit()


def test_agents_pair_prints_a_short_code_last_and_stores_only_its_hash(app, runner, seed):
    code = pair_code(runner, seed.username, seed.agent_name)

    assert CODE.fullmatch(code)
    with app.app_context():
        rows = db.session.execute(text("SELECT * FROM pairing_codes")).all()
        stored = db.session.scalar(db.select(PairingCode))
        assert stored.agent_id == seed.agent_id and stored.used_at is None
        assert timedelta(minutes=9) < stored.expires_at - utcnow() <= timedelta(minutes=10)
    assert code not in repr(rows) and code.replace("-", "") not in repr(rows)
    # Issuing a code changes nothing of the agent's token until the code is traded.
    assert agent_for_token(app, seed.token)["id"] == seed.agent_id


def test_agents_pair_creates_a_missing_agent_and_refuses_a_revoked_one(app, runner, seed):
    result = invoke(runner, "agents", "pair", seed.username, "build-server")
    assert result.exit_code == 0 and "created agent build-server" in result.stdout
    assert CODE.fullmatch(last_line(result.stdout))

    invoke(runner, "agents", "revoke", seed.username, seed.agent_name)
    assert_one_line_failure(
        invoke(runner, "agents", "pair", seed.username, seed.agent_name),
        f"agent {seed.agent_name!r} is revoked or expired; add a new agent",
    )
    assert_one_line_failure(invoke(runner, "agents", "pair", "nobody", "x"), "no user named 'nobody'")


def test_a_code_is_traded_once_for_a_fresh_token_that_replaces_the_old_one(app, client, runner, seed):
    code = pair_code(runner, seed.username, seed.agent_name)

    reply = trade(client, code)

    body = reply.get_json()
    assert reply.status_code == 200, body
    assert body == {
        "ok": True,
        "token": body["token"],
        "agentId": seed.agent_id,
        "agentName": seed.agent_name,
    }
    assert agent_for_token(app, body["token"])["id"] == seed.agent_id
    assert agent_for_token(app, seed.token) is None  # rotated
    with app.app_context():
        assert db.session.get(Agent, seed.agent_id).token_hash == hash_token(body["token"])

    second = refused(trade(client, code), 401, "unauthorized")
    unknown = refused(trade(client, pairing.new_code()), 401, "unauthorized")
    assert second == unknown == "unknown, used or expired pairing code"  # nothing tells them apart
    assert agent_for_token(app, body["token"])["id"] == seed.agent_id


def test_a_code_is_refused_after_it_expires(app, client, runner, seed):
    code = pair_code(runner, seed.username, seed.agent_name)
    expire(app, code)

    refused(trade(client, code), 401, "unauthorized")
    assert agent_for_token(app, seed.token)["id"] == seed.agent_id  # nothing changed


def test_a_new_code_withdraws_the_agents_earlier_one(app, client, runner, seed):
    first = pair_code(runner, seed.username, seed.agent_name)
    second = pair_code(runner, seed.username, seed.agent_name)

    refused(trade(client, first), 401, "unauthorized")
    assert trade(client, second).status_code == 200


def test_a_code_of_an_agent_revoked_since_is_refused(app, client, runner, seed):
    code = pair_code(runner, seed.username, seed.agent_name)
    invoke(runner, "agents", "revoke", seed.username, seed.agent_name)

    refused(trade(client, code), 401, "unauthorized")


def test_case_spaces_and_dashes_do_not_matter(client, runner, seed):
    code = pair_code(runner, seed.username, seed.agent_name)

    assert trade(client, f"  {code.replace('-', ' ').lower()} ").status_code == 200


def test_wrong_codes_are_rate_limited_per_address_right_ones_included(app, client, runner, seed):
    limit = app.config["PAIR_MAX_FAILURES"]
    for _ in range(limit):
        refused(trade(client, pairing.new_code(), "192.0.2.66"), 401, "unauthorized")
    code = pair_code(runner, seed.username, seed.agent_name)

    refused(trade(client, pairing.new_code(), "192.0.2.66"), 429, "rate_limited")
    refused(trade(client, code, "192.0.2.66"), 429, "rate_limited")  # not even a right guess gets in
    assert agent_for_token(app, seed.token)["id"] == seed.agent_id
    assert trade(client, code, "192.0.2.67").status_code == 200  # another address is not held up


@pytest.mark.parametrize(
    "body",
    [None, "ABCDE-FGHJK", {"code": 12345}, {"token": "x"}, ["ABCDE-FGHJK"]],
)
def test_a_malformed_trade_is_answered_with_invalid_message(client, body):
    if body is None:
        reply = client.post("/agent/pair", data="not json", content_type="application/json")
    else:
        reply = client.post("/agent/pair", json=body)
    refused(reply, 400, "invalid_message")


def test_an_oversized_trade_is_refused_before_it_is_read(client):
    reply = client.post("/agent/pair", json={"code": "A" * 10_000})
    assert reply.status_code == 413 and reply.get_json()["ok"] is False


def test_the_trade_needs_no_csrf_token_while_the_pages_still_do(database_url, seed):
    with app_with(database_url, WTF_CSRF_ENABLED=True) as app:
        with app.app_context():
            code = pairing.issue_code(db.session.get(Agent, seed.agent_id))
        client = app.test_client()
        assert client.post("/agent/pair", json={"code": code}).status_code == 200
        assert (
            client.post("/login", data={"username": seed.username, "password": seed.password}).status_code
            == 400
        )


def test_trading_cuts_off_an_agent_still_connected_with_the_old_token(app, client, runner, seed, sockets):
    connected = sockets.agent(seed.token)
    assert connected.connected
    code = pair_code(runner, seed.username, seed.agent_name)

    assert trade(client, code).status_code == 200

    assert not connected.connected
