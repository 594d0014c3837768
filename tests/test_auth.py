"""Login, logout, CSRF, throttling, redirects, secrets at rest and security headers."""

import glob
import html
import re
from urllib.parse import parse_qs, urljoin, urlsplit

import pytest
import sqlalchemy as sa

from app import create_app, db
from app.accounts import create_agent, create_user, rotate_token, set_password
from app.models import User
from config import Config, ProductionConfig, TestingConfig

CSRF_INPUT = re.compile(r'<input[^>]*name="csrf_token"[^>]*>')


@pytest.fixture
def csrf_app(database_url, monkeypatch):
    """The app with CSRF protection on, as in production."""
    from config import _database_url

    monkeypatch.setenv("TETHER_DATABASE_URL", database_url)

    class CsrfConfig(TestingConfig):
        SQLALCHEMY_DATABASE_URI = _database_url()
        WTF_CSRF_ENABLED = True

    app = create_app(CsrfConfig)
    yield app
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


@pytest.fixture
def csrf_client(csrf_app):
    return csrf_app.test_client()


def csrf_token(page):
    """The value of the form's hidden csrf_token input."""
    tag = CSRF_INPUT.search(page.get_data(as_text=True)).group(0)
    return re.search(r'value="([^"]+)"', tag).group(1)


def log_in(client, username, password, **query):
    return client.post("/login", query_string=query, data={"username": username, "password": password})


def error_text(page):
    match = re.search(r'<p class="error" role="alert">([^<]*)</p>', page.get_data(as_text=True))
    return match and match.group(1)


def same_origin_location(response, base="http://localhost/login"):
    """Where a browser would go: backslashes count as slashes, as they do in browsers."""
    location = response.headers["Location"].replace("\\", "/")
    return urlsplit(urljoin(base, location)).netloc == "localhost"


# -- login -----------------------------------------------------------------------


def test_login_page_has_a_hidden_csrf_token_and_the_form_fields(csrf_client):
    page = csrf_client.get("/login")
    assert page.status_code == 200
    tag = CSRF_INPUT.search(page.get_data(as_text=True)).group(0)
    assert 'type="hidden"' in tag
    assert len(csrf_token(page)) > 20
    text = page.get_data(as_text=True)
    assert re.search(r'<input[^>]*name="username"', text)
    assert re.search(
        r'<input[^>]*(name="password"[^>]*type="password"|type="password"[^>]*name="password")', text
    )
    assert re.search(r'<button[^>]*type="submit"', text)


def test_login_with_csrf_token_redirects_and_sets_an_httponly_samesite_lax_cookie(csrf_client, csrf_app):
    from tests.conftest import make_seed

    seed = make_seed(csrf_app, "/srv/alice")
    token = csrf_token(csrf_client.get("/login"))
    reply = csrf_client.post(
        "/login", data={"username": seed.username, "password": seed.password, "csrf_token": token}
    )
    assert reply.status_code == 302
    assert urlsplit(reply.headers["Location"]).path == "/"
    cookies = reply.headers.getlist("Set-Cookie")
    session = next(c for c in cookies if c.startswith("session="))
    attributes = [part.strip().lower() for part in session.split(";")]
    assert "httponly" in attributes
    assert "samesite=lax" in attributes
    assert csrf_client.get("/").status_code == 200


def test_wrong_password_answers_200_with_the_form_and_an_error(client, seed):
    reply = log_in(client, seed.username, "not the password")
    assert reply.status_code == 200
    assert error_text(reply) == "Wrong username or password."
    assert 'name="password"' in reply.get_data(as_text=True)
    with client.session_transaction() as session:
        assert "_user_id" not in session
    assert client.get("/").status_code == 302


def test_unknown_user_gets_the_same_answer_as_a_wrong_password(client, seed):
    unknown = log_in(client, "mallory", "not the password")
    wrong = log_in(client, seed.username, "not the password")
    assert (unknown.status_code, error_text(unknown)) == (wrong.status_code, error_text(wrong))


def test_login_post_without_csrf_token_is_refused(csrf_client, csrf_app):
    from tests.conftest import make_seed

    seed = make_seed(csrf_app, "/srv/alice")
    csrf_client.get("/login")
    reply = log_in(csrf_client, seed.username, seed.password)
    assert reply.status_code == 400
    assert error_text(reply)
    assert csrf_client.get("/").status_code == 302


def test_login_post_with_a_forged_csrf_token_is_refused(csrf_client, csrf_app):
    from tests.conftest import make_seed

    seed = make_seed(csrf_app, "/srv/alice")
    csrf_client.get("/login")
    data = {"username": seed.username, "password": seed.password, "csrf_token": "forged"}
    assert csrf_client.post("/login", data=data).status_code == 400
    assert csrf_client.get("/").status_code == 302


def test_pages_need_a_login(client, seed):
    for path in ("/", f"/projects/{seed.project_id}", f"/projects/{seed.project_id}/audit"):
        reply = client.get(path)
        assert reply.status_code == 302
        assert urlsplit(reply.headers["Location"]).path == "/login"


def test_login_is_throttled_after_repeated_failures_even_with_the_right_password(app, client, seed):
    limit = app.config["LOGIN_MAX_FAILURES"]
    for _ in range(limit):
        assert log_in(client, seed.username, "guess").status_code == 200
    blocked = log_in(client, seed.username, seed.password)
    assert blocked.status_code == 429
    assert error_text(blocked)
    assert client.get("/").status_code == 302
    # The same name in other letter case is the same account to the throttle.
    assert log_in(client, seed.username.upper(), seed.password).status_code == 429


def test_throttling_one_username_leaves_other_users_alone(app, client, seed):
    from tests.conftest import make_seed

    other = make_seed(app, "/srv/bob", username="bob")
    for _ in range(app.config["LOGIN_MAX_FAILURES"]):
        log_in(client, seed.username, "guess")
    assert log_in(client, other.username, other.password).status_code == 302


def test_successful_login_clears_earlier_failures(app, client, seed):
    limit = app.config["LOGIN_MAX_FAILURES"]
    for _ in range(limit - 1):
        log_in(client, seed.username, "guess")
    assert log_in(client, seed.username, seed.password).status_code == 302
    client.post("/logout")
    for _ in range(limit - 1):
        log_in(client, seed.username, "guess")
    assert log_in(client, seed.username, seed.password).status_code == 302


# -- logout -------------------------------------------------------------------------


def test_logout_is_post_only(client, seed):
    log_in(client, seed.username, seed.password)
    assert client.get("/logout").status_code == 405
    assert client.get("/").status_code == 200
    reply = client.post("/logout")
    assert reply.status_code == 302
    assert urlsplit(reply.headers["Location"]).path == "/login"
    assert client.get("/").status_code == 302


def test_logout_without_csrf_token_is_refused(csrf_client, csrf_app):
    from tests.conftest import make_seed

    seed = make_seed(csrf_app, "/srv/alice")
    token = csrf_token(csrf_client.get("/login"))
    data = {"username": seed.username, "password": seed.password, "csrf_token": token}
    assert csrf_client.post("/login", data=data).status_code == 302
    assert csrf_client.post("/logout").status_code == 400
    assert csrf_client.get("/").status_code == 200


# -- next ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "target",
    [
        "https://evil.example/",
        "//evil.example/",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        " //evil.example",
        "https:evil.example",
        "javascript:alert(1)",
    ],
)
def test_next_cannot_redirect_off_site(client, seed, target):
    reply = log_in(client, seed.username, seed.password, next=target)
    assert reply.status_code == 302
    assert same_origin_location(reply), reply.headers["Location"]
    assert not reply.headers["Location"].startswith("javascript:")


def test_next_on_this_site_is_followed(client, seed):
    target = f"/projects/{seed.project_id}?session=abc"
    reply = log_in(client, seed.username, seed.password, next=target)
    assert reply.status_code == 302
    assert reply.headers["Location"] == target


def test_login_page_redirect_keeps_next(client, seed):
    reply = client.get(f"/projects/{seed.project_id}")
    page = client.get(reply.headers["Location"]).get_data(as_text=True)
    action = html.unescape(re.search(r'<form method="post" action="([^"]*)"', page).group(1))
    assert parse_qs(urlsplit(action).query)["next"] == [f"/projects/{seed.project_id}"]


# -- secrets at rest -------------------------------------------------------------------


def database_bytes(app, database_url):
    """Everything the database holds: the raw file for SQLite, every row as text for PostgreSQL."""
    with app.app_context():
        db.session.remove()
        if database_url.startswith("sqlite"):
            db.engine.dispose()
            path = database_url.removeprefix("sqlite:///")
            return b"".join(open(name, "rb").read() for name in sorted(glob.glob(path + "*")))
        names = sa.inspect(db.engine).get_table_names()
        with db.engine.connect() as connection:
            rows = [
                connection.execute(sa.text(f'select row_to_json(t)::text from "{name}" t')).scalars().all()
                for name in names
            ]
        return "\n".join(row for table in rows for row in table).encode()


def test_database_holds_neither_the_password_nor_an_agent_token(app, client, seed, database_url):
    with app.app_context():
        user = db.session.get(User, seed.user_id)
        _, second_token = create_agent(user, "desktop")
        agent = create_agent(user, "server")[0]
        rotated = rotate_token(agent)
    log_in(client, seed.username, seed.password)
    stored = database_bytes(app, database_url)
    assert seed.username.encode() in stored  # we are looking at the right data
    assert seed.agent_id.encode() in stored
    for secret in (seed.password, seed.token, second_token, rotated):
        assert secret.encode() not in stored
    with app.app_context():
        assert db.session.get(User, seed.user_id).password_hash.startswith("scrypt:")


def test_users_made_by_the_app_get_full_strength_scrypt(app, client, monkeypatch):
    """Tests hash with a cheaper scrypt (TestingConfig); every other configuration with the full one."""
    assert Config.PASSWORD_HASH_METHOD == ProductionConfig.PASSWORD_HASH_METHOD == "scrypt"
    monkeypatch.setitem(app.config, "PASSWORD_HASH_METHOD", Config.PASSWORD_HASH_METHOD)
    with app.app_context():
        stored = create_user("carol", "a long enough password").password_hash
        set_password("carol", "another long password")
        changed = db.session.scalar(db.select(User).filter_by(username="carol")).password_hash

    for hashed in (stored, changed):
        assert hashed.startswith("scrypt:32768:8:1$"), hashed  # werkzeug's default work factor
    assert log_in(client, "carol", "another long password").status_code == 302


# -- security headers -------------------------------------------------------------------


def csp_directives(response):
    policy = response.headers["Content-Security-Policy"]
    directives = {}
    for part in policy.split(";"):
        words = part.split()
        if words:
            directives[words[0]] = words[1:]
    return directives


def test_pages_carry_the_security_headers(client, seed):
    anonymous = [client.get("/login"), client.get("/no-such-page")]
    log_in(client, seed.username, seed.password)
    pages = anonymous + [
        client.get("/"),
        client.get(f"/projects/{seed.project_id}"),
        client.get(f"/projects/{seed.project_id}/audit"),
        client.get(f"/api/projects/{seed.project_id}/sessions"),
    ]
    for page in pages:
        directives = csp_directives(page)
        script = directives.get("script-src", directives.get("default-src"))
        assert script == ["'self'"], page.request.path
        assert "'unsafe-inline'" not in " ".join(sum(directives.values(), []))
        assert directives["frame-ancestors"] == ["'none'"]
        assert page.headers["X-Frame-Options"] == "DENY"
        assert page.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_have_no_inline_script_the_policy_would_block(client, seed):
    log_in(client, seed.username, seed.password)
    for path in ("/", f"/projects/{seed.project_id}", f"/projects/{seed.project_id}/audit"):
        page = client.get(path).get_data(as_text=True)
        for tag in re.findall(r"<script\b[^>]*>", page):
            assert "src=" in tag, f"inline script on {path}"
        assert not re.search(r"\son[a-z]+\s*=", page), f"inline event handler on {path}"
        assert not re.search(r"<style\b|\sstyle\s*=", page), f"inline style on {path}"
