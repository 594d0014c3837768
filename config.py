"""Configuration classes. Every setting can come from a TETHER_* environment variable."""

import os
import secrets
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent
INSTANCE_DIR = Path(os.environ.get("TETHER_INSTANCE_PATH", BASE_DIR / "instance"))


def _database_url():
    url = os.environ.get("TETHER_DATABASE_URL")
    if not url:
        return f"sqlite:///{INSTANCE_DIR / 'tether.sqlite3'}"
    return sqlalchemy_url(url)


def sqlalchemy_url(url):
    """A plain postgresql:// URL must work as is: point SQLAlchemy at psycopg 3,
    the driver we install, instead of its default psycopg2."""
    for prefix in ("postgresql://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def development_secret_key():
    """Return the instance folder's secret key, creating it on first use."""
    path = INSTANCE_DIR / "secret_key"
    if not path.exists():
        INSTANCE_DIR.mkdir(parents=True, exist_ok=True)
        path.write_text(secrets.token_hex(32))
        path.chmod(0o600)
    return path.read_text().strip()


def _origins():
    raw = os.environ.get("TETHER_CORS_ORIGINS", "")
    return [origin.strip() for origin in raw.split(",") if origin.strip()]


class Config:
    """Development defaults: SQLite in the instance folder, a generated secret key."""

    SECRET_KEY = os.environ.get("TETHER_SECRET_KEY")
    SQLALCHEMY_DATABASE_URI = _database_url()
    SQLALCHEMY_ENGINE_OPTIONS = {"pool_pre_ping": True}
    # Bring the schema up to date at start-up (creates every table the first time).
    AUTO_MIGRATE = os.environ.get("TETHER_AUTO_MIGRATE", "1") == "1"
    MESSAGE_QUEUE = os.environ.get("TETHER_MESSAGE_QUEUE")
    MESSAGE_QUEUE_CHANNEL = os.environ.get("TETHER_MESSAGE_QUEUE_CHANNEL", "tether")
    CORS_ORIGINS = _origins()

    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    # Behind TLS set TETHER_SECURE_COOKIES=1 so cookies never travel in clear text.
    SESSION_COOKIE_SECURE = os.environ.get("TETHER_SECURE_COOKIES") == "1"
    REMEMBER_COOKIE_SECURE = SESSION_COOKIE_SECURE
    # Number of reverse proxies in front of the server (nginx: 1), for ProxyFix.
    PROXY_COUNT = int(os.environ.get("TETHER_PROXY_COUNT", "0"))

    # Login throttling: this many failures per username and address in the window -> 429.
    LOGIN_MAX_FAILURES = 5
    LOGIN_FAILURE_WINDOW = 300

    # Limits of the real-time relay.
    MAX_MESSAGE_BYTES = 1_000_000
    RATE_LIMIT_PER_SECOND = 20.0
    RATE_LIMIT_BURST = 60
    MAX_RUNNING_PER_USER = int(os.environ.get("TETHER_MAX_RUNNING_PER_USER", "8"))
    MAX_RUNNING_PER_AGENT = int(os.environ.get("TETHER_MAX_RUNNING_PER_AGENT", "8"))
    # Packets waiting for one browser socket before it is cut off as not reading.
    MAX_SEND_QUEUE = int(os.environ.get("TETHER_MAX_SEND_QUEUE", "2000"))
    # How long a running command waits for its lost agent to come back.
    AGENT_LOST_GRACE = float(os.environ.get("TETHER_AGENT_LOST_GRACE", "30"))
    # A command its agent has not acknowledged after this long is sent again.
    REDISPATCH_AFTER = float(os.environ.get("TETHER_REDISPATCH_AFTER", "10"))
    PRESENCE_INTERVAL = float(os.environ.get("TETHER_PRESENCE_INTERVAL", "10"))
    # How soon a connected agent whose token was revoked, rotated or expired is cut off.
    TOKEN_CHECK_INTERVAL = float(os.environ.get("TETHER_TOKEN_CHECK_INTERVAL", "1"))
    PRESENCE_TIMEOUT = float(os.environ.get("TETHER_PRESENCE_TIMEOUT", "30"))
    # Group commit: the writer yields once (0 s) so that chunks already arriving
    # join the batch; a batch also forms by itself while the previous one commits.
    WRITE_BATCH_WINDOW = 0.0
    WRITE_BATCH_MAX = 500


class ProductionConfig(Config):
    """`python wsgi.py`: refuses to start without an explicit secret key."""

    @classmethod
    def check(cls):
        if not cls.SECRET_KEY:
            raise RuntimeError("TETHER_SECRET_KEY must be set to run the production server")


class TestingConfig(Config):
    TESTING = True
    SECRET_KEY = "testing-secret"
    SQLALCHEMY_DATABASE_URI = os.environ.get("TETHER_TEST_DATABASE_URL", "sqlite://")
    WTF_CSRF_ENABLED = False
    PRESENCE_INTERVAL = 0.5
    PRESENCE_TIMEOUT = 3.0
    AGENT_LOST_GRACE = 2.0
