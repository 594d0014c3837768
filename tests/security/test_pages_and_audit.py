"""Page hardening (CSP, framing, cookies behind TLS) and the per-project audit log."""

import re

import pytest

from app import db
from app.models import AuditEntry
from tests.sockets import Sockets, app_with

PAGES = ["/", "/login", "/projects/{project}", "/projects/{project}/audit", "/nowhere"]


def logged_in(app, seed):
    http = app.test_client()
    assert http.post("/login", data={"username": seed.username, "password": seed.password}).status_code == 302
    return http


def csp_directives(reply):
    policy = reply.headers["Content-Security-Policy"]
    return {part.split()[0]: part.split()[1:] for part in policy.split(";") if part.strip()}


@pytest.mark.parametrize("path", PAGES)
def test_every_page_forbids_inline_script_and_framing(app, seed, path):
    reply = logged_in(app, seed).get(path.format(project=seed.project_id))

    directives = csp_directives(reply)
    assert directives["script-src"] == ["'self'"]  # no 'unsafe-inline', no 'unsafe-eval'
    assert directives["frame-ancestors"] == ["'none'"]
    assert directives["object-src"] == ["'none'"]
    assert reply.headers["X-Frame-Options"] == "DENY"
    assert reply.headers["X-Content-Type-Options"] == "nosniff"
    assert reply.headers["Cache-Control"] == "no-store"
    html = reply.get_data(as_text=True)
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), "inline script"
    assert not re.search(r"\son[a-z]+\s*=", html), "inline event handler"


def test_plain_http_gets_no_hsts_and_no_secure_cookie(app, seed):
    reply = app.test_client().post("/login", data={"username": seed.username, "password": seed.password})

    assert "Strict-Transport-Security" not in reply.headers
    assert "Secure" not in reply.headers["Set-Cookie"]


def test_behind_a_tls_proxy_cookies_are_secure_and_hsts_is_sent(database_url, tmp_path):
    from tests.conftest import make_seed

    settings = {"PROXY_COUNT": 1, "SESSION_COOKIE_SECURE": True, "REMEMBER_COOKIE_SECURE": True}
    with app_with(database_url, **settings) as app:
        seed = make_seed(app, str(tmp_path))
        http = app.test_client()
        forwarded = {
            "X-Forwarded-Proto": "https",
            "X-Forwarded-Host": "tether.example",
            "X-Forwarded-For": "1.2.3.4",
        }

        reply = http.post(
            "/login", data={"username": seed.username, "password": seed.password}, headers=forwarded
        )

        assert reply.status_code == 302
        cookie = reply.headers["Set-Cookie"]
        assert "Secure" in cookie and "HttpOnly" in cookie and "SameSite=Lax" in cookie
        assert reply.headers["Strict-Transport-Security"].startswith("max-age=")
        assert reply.headers["Location"] in ("/", "https://tether.example/")
        # The install command shown for a new agent names the address the browser used.
        page = http.post("/agents", data={"name": "desk"}, headers=forwarded).get_data(as_text=True)
        assert "--server https://tether.example" in page


def test_without_a_declared_proxy_forwarded_headers_are_ignored(app, seed):
    http = logged_in(app, seed)
    forged = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "evil.example"}

    page = http.post("/agents", data={"name": "desk"}, headers=forged).get_data(as_text=True)

    assert "evil.example" not in page and "--server http://localhost" in page


def test_the_secure_cookie_and_proxy_settings_come_from_the_environment(monkeypatch):
    import importlib

    import config

    monkeypatch.setenv("TETHER_SECURE_COOKIES", "1")
    monkeypatch.setenv("TETHER_PROXY_COUNT", "2")
    try:
        fresh = importlib.reload(config)
        assert fresh.Config.SESSION_COOKIE_SECURE is True and fresh.Config.REMEMBER_COOKIE_SECURE is True
        assert fresh.Config.PROXY_COUNT == 2
    finally:
        monkeypatch.delenv("TETHER_SECURE_COOKIES")
        monkeypatch.delenv("TETHER_PROXY_COUNT")
        importlib.reload(config)


# -- the audit log ---------------------------------------------------------------------------------


def entries(app, project_id):
    with app.app_context():
        rows = db.session.scalars(
            db.select(AuditEntry).filter_by(project_id=project_id).order_by(AuditEntry.id)
        )
        return [(row.user.username, row.action, row.detail) for row in rows]


def test_runs_stops_and_permission_decisions_are_audited_with_who_and_what(app, seed, sockets):
    agent, browser = sockets.agent(seed.token), sockets.browser(seed)
    run = browser.call(
        "execute_command",
        projectId=seed.project_id,
        command="say: <script>alert(1)</script>",
        clientMessageId="m1",
    )
    assert browser.call(
        "execute_command",
        projectId=seed.project_id,
        command="say: <script>alert(1)</script>",
        clientMessageId="m1",
    )["repeated"]
    for request_id, decision in (("r1", "allow"), ("r2", "deny")):
        assert agent.call(
            "permission_request",
            sessionId=run["sessionId"],
            commandId=run["commandId"],
            requestId=request_id,
            toolName="Bash",
            input={"command": f"rm -rf /tmp/{request_id}"},
        )["ok"]
        assert browser.call(
            "permission_response", sessionId=run["sessionId"], requestId=request_id, decision=decision
        )["ok"]
    assert browser.call("cancel_command", sessionId=run["sessionId"])["ok"]
    elsewhere = browser.call(
        "execute_command", projectId=seed.project_id, command="say: x", workingDirectory="/srv/other"
    )
    assert elsewhere["ok"]

    assert entries(app, seed.project_id) == [
        ("alice", "run", "say: <script>alert(1)</script>"),  # once: the repeat ran nothing
        ("alice", "permission", "allow Bash: {'command': 'rm -rf /tmp/r1'}"),
        ("alice", "permission", "deny Bash: {'command': 'rm -rf /tmp/r2'}"),
        ("alice", "stop", run["commandId"]),
        ("alice", "run", "[in /srv/other] say: x"),
    ]


def test_the_audit_page_shows_entries_escaped_to_the_owner_only(app, seed, other):
    sockets = Sockets(app)
    try:
        sockets.agent(seed.token)
        run = sockets.browser(seed).call(
            "execute_command", projectId=seed.project_id, command="say: <img src=x onerror=alert(1)>"
        )
        assert run["ok"]
    finally:
        sockets.close()

    page = logged_in(app, seed).get(f"/projects/{seed.project_id}/audit").get_data(as_text=True)
    assert "&lt;img src=x onerror=alert(1)&gt;" in page and "<img src=x" not in page
    assert logged_in(app, other).get(f"/projects/{seed.project_id}/audit").status_code == 404
    assert app.test_client().get(f"/projects/{seed.project_id}/audit").status_code == 302  # to the login


def test_refused_events_leave_no_audit_entry(app, seed, other, sockets):
    sockets.agent(seed.token)
    bob = sockets.browser(other)

    bob.call("execute_command", projectId=seed.project_id, command="say: mine now")
    sockets.browser(seed).call("execute_command", projectId=seed.project_id, command="")

    assert entries(app, seed.project_id) == []
