"""The servers start as real processes: `python wsgi.py` under eventlet and gevent, and `flask run`,
each on an empty database that it brings to the current schema itself."""

import os
import re
import sys

import pytest
import requests
import sqlalchemy as sa

from app import create_app, db
from app.accounts import create_user
from config import TestingConfig
from tests.conftest import PASSWORD
from tests.harness import Process, WebClient, free_port, wait_until

pytestmark = pytest.mark.integration

TABLES = {"users", "agents", "projects", "chat_sessions", "commands", "chunks", "audit_log"}


@pytest.fixture
def processes():
    started = []
    yield started
    for process in reversed(started):
        process.stop()


def make_inspector_app(database_url, monkeypatch):
    """An app on the server's database that creates nothing itself."""
    from config import _database_url

    monkeypatch.setenv("TETHER_DATABASE_URL", database_url)

    class Inspect(TestingConfig):
        SQLALCHEMY_DATABASE_URI = _database_url()
        AUTO_MIGRATE = False

    return create_app(Inspect)


def make_user_on(database_url, monkeypatch, username="alice"):
    """Check the server created the tables, then add a user to them."""
    app = make_inspector_app(database_url, monkeypatch)
    try:
        with app.app_context():
            assert set(sa.inspect(db.engine).get_table_names()) >= TABLES
            create_user(username, PASSWORD)
    finally:
        with app.app_context():
            db.session.remove()
            db.engine.dispose()
    return username


def assert_serves_login_and_sockets(url, database_url, monkeypatch):
    page = requests.get(url + "/login", timeout=10)
    assert page.status_code == 200
    assert re.search(r'name="csrf_token"[^>]*type="hidden"|type="hidden"[^>]*name="csrf_token"', page.text)
    assert page.headers["X-Frame-Options"] == "DENY"

    username = make_user_on(database_url, monkeypatch)
    browser = WebClient(url, username, PASSWORD).connect()
    try:
        assert browser.sio.connected
        assert browser.http.get(url + "/").status_code == 200
    finally:
        browser.close()


@pytest.mark.parametrize("async_mode", ["eventlet", "gevent"])
def test_production_server_starts_and_serves_login(empty_database_url, server_with, monkeypatch, async_mode):
    server = server_with(async_mode=async_mode, database_url=empty_database_url)
    assert f"Tether serving on {server.url} ({async_mode}), process " in server.output()
    assert_serves_login_and_sockets(server.url, empty_database_url, monkeypatch)


def test_development_server_starts_and_serves_login(empty_database_url, tmp_path, processes, monkeypatch):
    port = free_port()
    env = {key: value for key, value in os.environ.items() if not key.startswith("TETHER_")}
    env.update(TETHER_DATABASE_URL=empty_database_url, TETHER_INSTANCE_PATH=str(tmp_path / "instance"))
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    args = [flask, "--app", "wsgi", "run", "--host", "127.0.0.1", "--port", str(port)]
    server = Process(args, env, str(tmp_path / "flask-run.log"))
    processes.append(server)
    server.start()
    url = f"http://127.0.0.1:{port}"

    def serving():
        if server.proc.poll() is not None:
            raise AssertionError(f"flask run exited:\n{server.output()}")
        try:
            return requests.get(url + "/login", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    wait_until(serving, message=f"flask run on {url}")
    assert_serves_login_and_sockets(url, empty_database_url, monkeypatch)
    # Without TETHER_SECRET_KEY the development server keeps a generated key in the instance folder.
    assert (tmp_path / "instance" / "secret_key").exists()
