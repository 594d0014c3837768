"""Configuration: the app factory, TETHER_* variables, the secret key and the production guard."""

import importlib.util
import inspect
import os
import stat
import subprocess
import sys

import pytest
import sqlalchemy as sa

import config
from app import attach_realtime, create_app, current_services, db, socketio
from config import Config, TestingConfig
from tests.harness import ROOT

TABLES = {
    "users",
    "agents",
    "projects",
    "chat_sessions",
    "commands",
    "chunks",
    "permission_requests",
    "audit_log",
}
SECRET_KEY_MISSING = "error: TETHER_SECRET_KEY must be set to run the production server"


def make_env(**values):
    """The current environment without any TETHER_* variable, plus `values`."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("TETHER_")}
    env.update(values)
    return env


def make_config_module(monkeypatch, **values):
    """A fresh copy of config.py, read with exactly the TETHER_* variables in `values`."""
    for key in list(os.environ):
        if key.startswith("TETHER_"):
            monkeypatch.delenv(key)
    for key, value in values.items():
        monkeypatch.setenv(key, value)
    spec = importlib.util.spec_from_file_location("config_under_test", os.path.join(ROOT, "config.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def make_app(url, **settings):
    """An app on `url` built from the development Config with `settings` on top.

    Its background services stay stopped: these tests look at what create_app builds, and
    a scheduler left running would act on the test's database after the test, until the
    process ends (and fail loudly once the database is dropped)."""
    settings = {"SQLALCHEMY_DATABASE_URI": url, "SERVICES_AUTOSTART": False, **settings}
    return create_app(type("CustomConfig", (Config,), settings))


@pytest.fixture
def app_url(empty_database_url, monkeypatch):
    """An empty test database's URL as the app would use it (plain postgresql:// -> psycopg 3)."""
    monkeypatch.setenv("TETHER_DATABASE_URL", empty_database_url)
    return config._database_url()


def table_names(app):
    with app.app_context():
        return set(sa.inspect(db.engine).get_table_names())


def dispose(app):
    with app.app_context():
        db.session.remove()
        db.engine.dispose()


# -- create_app ----------------------------------------------------------------


def test_create_app_with_testing_config_builds_a_ready_app():
    app = create_app(TestingConfig)
    try:
        assert app.testing
        assert app.config["SECRET_KEY"] == "testing-secret"
        assert app.config["WTF_CSRF_ENABLED"] is False
        assert table_names(app) >= TABLES
        assert {"sqlalchemy", "migrate", "socketio", "csrf"} <= set(app.extensions)
        routes = {rule.rule for rule in app.url_map.iter_rules()}
        assert {"/login", "/logout", "/", "/projects/<project_id>"} <= routes
        assert {"users", "agents", "projects"} <= set(app.cli.commands)
    finally:
        dispose(app)


def wsgi_chain(app):
    """The names of the WSGI layers in front of Flask's own wsgi_app, outermost first."""
    names, layer = [], app.wsgi_app
    while not inspect.ismethod(layer):  # Flask's wsgi_app, bound to the app, is the innermost
        names.append(getattr(layer, "__name__", type(layer).__name__))
        if inspect.isfunction(layer):  # a closure around the next layer
            layer = layer.__closure__[0].cell_contents
        else:
            layer = getattr(layer, "wsgi_app", None) or layer.app  # ProxyFix calls it `app`
    return names


def test_attaching_the_realtime_side_again_renews_it_and_nests_nothing(database_url):
    app = make_app(database_url, SECRET_KEY="k", TESTING=True)
    try:
        services, server = current_services(app), socketio.server
        assert wsgi_chain(app) == ["WSGIEntry"]
        app.config["PROXY_COUNT"] = 1  # attach_realtime reads the configuration as it is now
        attach_realtime(app)
        assert current_services(app) is not services and socketio.server is not server
        assert wsgi_chain(app) == ["ProxyFix", "WSGIEntry"]
    finally:
        current_services(app).stop()
        dispose(app)


def test_app_fixture_creates_every_table_in_the_test_database(app):
    assert TABLES | {"alembic_version"} <= table_names(app)


def test_creating_the_app_twice_on_one_database_keeps_its_data(app_url):
    from app.accounts import create_user
    from app.models import User

    first = make_app(app_url, SECRET_KEY="k", TESTING=True)
    with first.app_context():
        create_user("alice", "long enough password")
    dispose(first)
    second = make_app(app_url, SECRET_KEY="k", TESTING=True)
    try:
        with second.app_context():
            assert [u.username for u in db.session.scalars(db.select(User))] == ["alice"]
    finally:
        dispose(second)


@pytest.mark.integration
def test_app_loggers_still_log_after_the_tables_are_created(tmp_path):
    # create_app runs the migrations; the server's own loggers must survive them.
    script = (
        "import logging\n"
        "from app import create_app\n"
        "create_app()\n"
        "logging.getLogger('tether.storage').error('probe-error')\n"
        "logging.getLogger('tether.presence').info('probe-info')\n"
    )
    env = make_env(TETHER_INSTANCE_PATH=str(tmp_path / "instance"))
    done = subprocess.run(
        [sys.executable, "-c", script], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stderr
    assert "probe-error" in done.stderr, (
        "BUG: migrations/env.py calls logging.config.fileConfig(), which disables every logger that "
        "exists already (tether.storage, tether.sockets, tether.presence, ...): the server's errors "
        "are never logged"
    )
    assert "probe-info" in done.stderr, "BUG: fileConfig() also resets the root level to WARN"


# -- TETHER_* variables ------------------------------------------------------------


def test_default_database_is_a_sqlite_file_in_the_instance_folder(monkeypatch, tmp_path):
    module = make_config_module(monkeypatch, TETHER_INSTANCE_PATH=str(tmp_path / "inst"))
    assert tmp_path / "inst" == module.INSTANCE_DIR
    assert f"sqlite:///{tmp_path / 'inst' / 'tether.sqlite3'}" == module.Config.SQLALCHEMY_DATABASE_URI


def test_default_instance_folder_is_next_to_config(monkeypatch):
    module = make_config_module(monkeypatch)
    assert module.INSTANCE_DIR == module.BASE_DIR / "instance"
    assert module.BASE_DIR == config.BASE_DIR


@pytest.mark.parametrize(
    ("given", "used"),
    [
        (
            "postgresql://tether:pw@db.example:5432/tether",
            "postgresql+psycopg://tether:pw@db.example:5432/tether",
        ),
        ("postgres://tether@db.example/tether", "postgresql+psycopg://tether@db.example/tether"),
        ("postgresql+psycopg://u@h/d", "postgresql+psycopg://u@h/d"),
        ("sqlite:////var/lib/tether/tether.sqlite3", "sqlite:////var/lib/tether/tether.sqlite3"),
    ],
)
def test_database_url_is_read_and_plain_postgresql_gets_psycopg_3(monkeypatch, given, used):
    module = make_config_module(monkeypatch, TETHER_DATABASE_URL=given)
    assert used == module.Config.SQLALCHEMY_DATABASE_URI


def test_plain_database_url_of_the_test_database_works_as_is(monkeypatch, database_url):
    module = make_config_module(monkeypatch, TETHER_DATABASE_URL=database_url)
    app = make_app(module.Config.SQLALCHEMY_DATABASE_URI, SECRET_KEY="k", TESTING=True)
    try:
        with app.app_context():
            expected = "postgresql+psycopg" if database_url.startswith("postgresql") else "sqlite"
            assert db.engine.url.drivername == expected
            assert db.session.execute(sa.text("select count(*) from users")).scalar() == 0
    finally:
        dispose(app)


def test_every_setting_is_read_from_its_tether_variable(monkeypatch):
    module = make_config_module(
        monkeypatch,
        TETHER_SECRET_KEY="s3cret",
        TETHER_MESSAGE_QUEUE="redis://127.0.0.1:6379/0",
        TETHER_MESSAGE_QUEUE_CHANNEL="staging",
        TETHER_CORS_ORIGINS=" https://a.example , https://b.example,, ",
        TETHER_SECURE_COOKIES="1",
        TETHER_PROXY_COUNT="1",
        TETHER_AUTO_MIGRATE="0",
        TETHER_MAX_RUNNING_PER_USER="3",
        TETHER_MAX_RUNNING_PER_AGENT="4",
        TETHER_AGENT_LOST_GRACE="12.5",
        TETHER_PRESENCE_INTERVAL="2",
        TETHER_PRESENCE_TIMEOUT="7",
    )
    c = module.Config
    assert c.SECRET_KEY == "s3cret"
    assert c.MESSAGE_QUEUE == "redis://127.0.0.1:6379/0"
    assert c.MESSAGE_QUEUE_CHANNEL == "staging"
    assert c.CORS_ORIGINS == ["https://a.example", "https://b.example"]
    assert c.SESSION_COOKIE_SECURE is True and c.REMEMBER_COOKIE_SECURE is True
    assert c.PROXY_COUNT == 1
    assert c.AUTO_MIGRATE is False
    assert (c.MAX_RUNNING_PER_USER, c.MAX_RUNNING_PER_AGENT) == (3, 4)
    assert (c.AGENT_LOST_GRACE, c.PRESENCE_INTERVAL, c.PRESENCE_TIMEOUT) == (12.5, 2.0, 7.0)


def test_defaults_without_any_tether_variable(monkeypatch):
    c = make_config_module(monkeypatch).Config
    assert c.SECRET_KEY is None
    assert c.MESSAGE_QUEUE is None
    assert c.MESSAGE_QUEUE_CHANNEL == "tether"
    assert c.CORS_ORIGINS == []
    assert c.SESSION_COOKIE_SECURE is False
    assert c.PROXY_COUNT == 0
    assert c.AUTO_MIGRATE is True
    assert c.SESSION_COOKIE_HTTPONLY is True and c.SESSION_COOKIE_SAMESITE == "Lax"


# -- the development secret key --------------------------------------------------


@pytest.fixture
def instance_dir(tmp_path, monkeypatch):
    """Point the instance folder (config's and the app factory's copy) to a temporary one."""
    path = tmp_path / "instance"
    monkeypatch.setattr(config, "INSTANCE_DIR", path)
    monkeypatch.setattr("app.INSTANCE_DIR", path)
    return path


def test_development_generates_a_secret_key_once_and_reuses_it(instance_dir, app_url):
    first = make_app(app_url, SECRET_KEY=None)
    key_file = instance_dir / "secret_key"
    key = key_file.read_text().strip()
    assert len(key) >= 64
    assert first.config["SECRET_KEY"] == key
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    dispose(first)

    second = make_app(app_url, SECRET_KEY=None)
    assert second.config["SECRET_KEY"] == key
    assert key_file.read_text().strip() == key
    dispose(second)


def test_each_instance_folder_gets_its_own_secret_key(tmp_path, monkeypatch):
    keys = []
    for name in ("one", "two"):
        monkeypatch.setattr(config, "INSTANCE_DIR", tmp_path / name)
        keys.append(config.development_secret_key())
    assert keys[0] != keys[1]
    assert (tmp_path / "one" / "secret_key").read_text().strip() == keys[0]


def test_explicit_secret_key_writes_no_key_file(instance_dir, app_url):
    app = make_app(app_url, SECRET_KEY="from-the-environment")
    assert app.config["SECRET_KEY"] == "from-the-environment"
    assert not (instance_dir / "secret_key").exists()
    dispose(app)


@pytest.mark.integration
def test_flask_command_without_secret_key_keeps_its_key_in_the_instance_path(tmp_path):
    # The real thing: TETHER_INSTANCE_PATH decides where the generated key and database live.
    instance = tmp_path / "instance"
    env = make_env(TETHER_INSTANCE_PATH=str(instance))
    flask = os.path.join(os.path.dirname(sys.executable), "flask")
    keys = []
    for _ in range(2):
        done = subprocess.run(
            [flask, "--app", "wsgi", "agents", "list", "nobody"],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 1 and "no user named 'nobody'" in done.stderr
        keys.append((instance / "secret_key").read_text())
    assert keys[0] == keys[1]
    assert (instance / "tether.sqlite3").exists()


# -- the production server's guard ---------------------------------------------------


@pytest.mark.integration
@pytest.mark.parametrize("async_mode", ["gevent", "eventlet"])
@pytest.mark.parametrize("secret", [None, ""])
def test_production_server_refuses_to_start_without_a_secret_key(tmp_path, async_mode, secret):
    instance = tmp_path / "instance"
    env = make_env(
        TETHER_ASYNC_MODE=async_mode,
        TETHER_INSTANCE_PATH=str(instance),
        TETHER_DATABASE_URL=f"sqlite:///{tmp_path / 'prod.sqlite3'}",
        TETHER_PORT="9",
    )
    if secret is not None:
        env["TETHER_SECRET_KEY"] = secret
    done = subprocess.run(
        [sys.executable, "wsgi.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert lines[-1] == SECRET_KEY_MISSING
    assert "Traceback" not in done.stderr
    if async_mode == "gevent":
        assert lines == [SECRET_KEY_MISSING]
    # It stops before touching anything: no key file, no database.
    assert not instance.exists()
    assert not (tmp_path / "prod.sqlite3").exists()


@pytest.mark.integration
def test_production_server_refuses_an_unknown_async_mode(tmp_path):
    env = make_env(TETHER_ASYNC_MODE="tornado", TETHER_SECRET_KEY="k", TETHER_INSTANCE_PATH=str(tmp_path))
    done = subprocess.run(
        [sys.executable, "wsgi.py"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert done.returncode != 0
    assert done.stderr.strip().splitlines() == ["TETHER_ASYNC_MODE must be eventlet or gevent, not 'tornado'"]
