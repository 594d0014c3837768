"""Tether's Flask application factory."""

import logging
import secrets

import sqlalchemy
from flask import Flask, current_app
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_socketio import SocketIO
from flask_sqlalchemy import SQLAlchemy
from flask_wtf.csrf import CSRFProtect
from werkzeug.middleware.proxy_fix import ProxyFix

from config import BASE_DIR, INSTANCE_DIR, Config, development_secret_key

db = SQLAlchemy()
migrate = Migrate(directory=str(BASE_DIR / "migrations"), render_as_batch=True)
login = LoginManager()
login.login_view = "auth.login"
csrf = CSRFProtect()
socketio = SocketIO()

# Identifies this server process in shared presence state (scale-out).
SERVER_ID = secrets.token_hex(8)


def create_app(config_class=Config, async_mode="threading"):
    """Build the app. `flask run` uses threading; `python wsgi.py` passes eventlet or gevent."""
    app = _web_app(config_class)
    attach_realtime(app, async_mode)
    if app.config["AUTO_MIGRATE"]:
        with app.app_context():
            _create_tables()
    if app.config["SERVICES_AUTOSTART"]:
        app.extensions["tether"].start()
    return app


def _web_app(config_class):
    """Flask with the database, logins, CSRF and the pages: what serves plain HTTP."""
    app = Flask(
        __name__,
        instance_path=str(INSTANCE_DIR),
        template_folder=str(BASE_DIR / "templates"),
        static_folder=str(BASE_DIR / "static"),
    )
    app.config.from_object(config_class)
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = development_secret_key()
    INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s [%(name)s] %(message)s")
    # Our own loggers speak at INFO whatever the root level (Alembic's config sets it to WARN).
    logging.getLogger("tether").setLevel(logging.INFO)

    db.init_app(app)
    with app.app_context():
        _tune_sqlite(db.engine)
    migrate.init_app(app, db)
    login.init_app(app)
    csrf.init_app(app)

    from app import agent_dist, auth, cli, install, main, notifications, security

    app.register_blueprint(auth.bp)
    app.register_blueprint(main.bp)
    app.register_blueprint(install.bp)
    app.register_blueprint(notifications.bp)
    agent_dist.init_app(app)
    cli.register(app)
    security.init_app(app)
    app.extensions["tether_flask_wsgi"] = app.wsgi_app
    return app


def attach_realtime(app, async_mode="threading"):
    """Socket.IO with its namespaces, the WSGI middleware in front of it, and new background
    services (not started), all read from the app's configuration as it is now.

    create_app calls it once. Calling it again gives the app a new Socket.IO server and new
    services with nothing in memory, on the same Flask app and database engine: the unit tests
    reuse one app per process that way, since building the Flask side (Werkzeug compiling the
    routes, SQLAlchemy its statements for a new engine) costs more than most tests.
    """
    from app.entry import WSGIEntry

    _init_socketio(app, async_mode)
    # In place of the middleware Flask-SocketIO put in front of Flask (app/entry.py says why).
    app.wsgi_app = WSGIEntry(app, socketio.server, app.config["MAX_TRANSPORT_BYTES"])
    if app.config["PROXY_COUNT"]:
        # So that Socket.IO's origin check sees the forwarded host and scheme too.
        count = app.config["PROXY_COUNT"]
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=count, x_proto=count, x_host=count)


def _init_socketio(app, async_mode):
    """Socket.IO with its namespaces, and the background services they rely on."""
    from app import websocket_speedups
    from app.delivery import SessionDelivery, make_client_manager
    from app.services import Services
    from app.sockets import register_namespaces

    websocket_speedups.install(async_mode)  # large messages must not stop a gevent or eventlet server

    delivery = SessionDelivery(app)
    socketio.init_app(
        app,
        async_mode=async_mode,
        client_manager=make_client_manager(delivery, app),
        cors_allowed_origins=_allowed_origins(app),
        max_http_buffer_size=app.config["MAX_TRANSPORT_BYTES"],
        # Each browser subscribes with afterSeq; nothing relies on long-polling
        # stickiness, so the socket can go straight to WebSocket.
        ping_interval=app.config["PING_INTERVAL"],
        ping_timeout=app.config["PING_TIMEOUT"],
    )
    web_namespace, agent_namespace = register_namespaces(socketio)
    app.extensions["tether"] = services = Services(app, delivery, web_namespace, agent_namespace)
    _schedule_jobs(app, services.scheduler)


def _schedule_jobs(app, scheduler):
    from app import presence, push, relay
    from app.sockets.agent import cut_off_invalid_agents
    from app.sockets.web import watch_browser_access

    every = app.config["PRESENCE_INTERVAL"]
    scheduler.add("presence", presence.sweep, every)
    scheduler.add("redispatch", relay.redispatch_unacknowledged, every)
    scheduler.add("tail catch-up", current_services(app).delivery.catch_up_all, every)
    scheduler.add("token watch", cut_off_invalid_agents, app.config["TOKEN_CHECK_INTERVAL"])
    scheduler.add("access watch", watch_browser_access, app.config["ACCESS_CHECK_INTERVAL"])
    scheduler.add("push retries", current_services(app).push.requeue_due, 1.0)
    scheduler.add("push claims cleanup", push.prune_sent, 3600)


def current_services(app=None):
    """The background services of `app` (default: the current app): app/services.py."""
    return (app or current_app).extensions["tether"]


def _tune_sqlite(engine):
    """WAL and synchronous=NORMAL: a commit no longer waits for the disk (14 ms -> well
    under 1 ms here), and readers never block the writer. busy_timeout lets a second
    process (an admin command, a test) wait for the lock instead of failing."""
    if engine.dialect.name != "sqlite":
        return

    @sqlalchemy.event.listens_for(engine, "connect")
    def set_pragmas(connection, record):
        cursor = connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=10000")
        cursor.close()


def _allowed_origins(app):
    """Same origin always, plus TETHER_CORS_ORIGINS; anything else is refused at connect."""
    extra = set(app.config["CORS_ORIGINS"])

    def allowed(origin, environ):
        own = f"{environ.get('wsgi.url_scheme', 'http')}://{environ.get('HTTP_HOST', '')}"
        return origin == own or origin in extra

    return allowed


def _create_tables():
    """Bring the schema up to date (creates every table on first start)."""
    from flask_migrate import upgrade

    upgrade(directory=migrate.directory)
