"""Configuration classes. Every setting can come from a TETHER_* environment variable."""

import os
import secrets
from pathlib import Path

from protocol.workspace import MAX_COMMAND_MESSAGE_BYTES, MAX_SOCKET_MESSAGE_BYTES

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
    # How passwords are hashed: werkzeug's scrypt at its own work factor (n=2**15), about 0.1 s
    # of CPU to make or to check. Only TestingConfig lowers it.
    PASSWORD_HASH_METHOD = "scrypt"
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
    # Pairing codes (app/pairing.py): how long one is valid, and wrong codes allowed per address.
    PAIRING_CODE_MINUTES = 10
    PAIR_MAX_FAILURES = 10
    PAIR_FAILURE_WINDOW = 600

    # Limits of the real-time relay. One event's JSON: MAX_MESSAGE_BYTES, but an
    # execute_command with attachments may be MAX_COMMAND_MESSAGE_BYTES; Engine.IO
    # takes messages up to MAX_TRANSPORT_BYTES (max_http_buffer_size), for those and
    # for an agent's answer about a file (docs/protocol.md, Workspace).
    MAX_MESSAGE_BYTES = 1_000_000
    MAX_COMMAND_MESSAGE_BYTES = MAX_COMMAND_MESSAGE_BYTES
    MAX_TRANSPORT_BYTES = MAX_SOCKET_MESSAGE_BYTES
    # How long a browser's list_files, read_file or git_changes waits for the agent's
    # answer, and how often meanwhile it looks whether the agent is still there.
    WORKSPACE_TIMEOUT = float(os.environ.get("TETHER_WORKSPACE_TIMEOUT", "15"))
    WORKSPACE_POLL = 0.5
    RATE_LIMIT_PER_SECOND = 20.0
    RATE_LIMIT_BURST = 60
    MAX_RUNNING_PER_USER = int(os.environ.get("TETHER_MAX_RUNNING_PER_USER", "8"))
    MAX_RUNNING_PER_AGENT = int(os.environ.get("TETHER_MAX_RUNNING_PER_AGENT", "8"))
    # Engine.IO heartbeat: a peer that answers no ping for PING_INTERVAL + PING_TIMEOUT
    # seconds (a frozen agent, a vanished laptop) is disconnected.
    PING_INTERVAL = float(os.environ.get("TETHER_PING_INTERVAL", "10"))
    PING_TIMEOUT = float(os.environ.get("TETHER_PING_TIMEOUT", "10"))
    # Packets waiting for one browser socket before it is cut off as not reading.
    MAX_SEND_QUEUE = int(os.environ.get("TETHER_MAX_SEND_QUEUE", "2000"))
    # ... and bytes: 2,000 packets of 64,000-character chunks would be 128 MB for one browser.
    MAX_SEND_QUEUE_BYTES = int(os.environ.get("TETHER_MAX_SEND_QUEUE_BYTES", str(8 * 1024 * 1024)))
    # How long a running command waits for its lost agent to come back.
    AGENT_LOST_GRACE = float(os.environ.get("TETHER_AGENT_LOST_GRACE", "30"))
    # A command its agent has not acknowledged after this long is sent again.
    REDISPATCH_AFTER = float(os.environ.get("TETHER_REDISPATCH_AFTER", "10"))
    PRESENCE_INTERVAL = float(os.environ.get("TETHER_PRESENCE_INTERVAL", "10"))
    # A running command missing from its agent's heartbeats is given up as agent_lost only
    # when still missing this long after the first heartbeat that lacked it: one heartbeat
    # can cross a command's dispatch or its last result on the way.
    HEARTBEAT_GRACE = float(os.environ.get("TETHER_HEARTBEAT_GRACE", "15"))
    # How soon a connected agent whose token was revoked, rotated or expired is cut off.
    TOKEN_CHECK_INTERVAL = float(os.environ.get("TETHER_TOKEN_CHECK_INTERVAL", "1"))
    # How soon a browser socket loses what its user no longer may see (unshared project,
    # revoked or expired link) or is closed (ended login): well within a second.
    ACCESS_CHECK_INTERVAL = float(os.environ.get("TETHER_ACCESS_CHECK_INTERVAL", "0.5"))
    PRESENCE_TIMEOUT = float(os.environ.get("TETHER_PRESENCE_TIMEOUT", "30"))
    # Background services start with the app (False: a test starts them itself).
    SERVICES_AUTOSTART = True
    # Group commit: the writer yields once (0 s) so that chunks already arriving
    # join the batch; a batch also forms by itself while the previous one commits.
    WRITE_BATCH_WINDOW = 0.0
    WRITE_BATCH_MAX = 500

    # Web Push (app/push.py). The VAPID key: TETHER_VAPID_PRIVATE_KEY (PEM, or base64url DER
    # or raw), else one made once into the instance folder. Every server process must use the same.
    VAPID_PRIVATE_KEY = os.environ.get("TETHER_VAPID_PRIVATE_KEY")
    # The VAPID `sub` claim: how a push service reaches whoever runs this server.
    VAPID_SUBJECT = os.environ.get("TETHER_VAPID_SUBJECT", "mailto:admin@localhost")
    # Subscription endpoints on private, loopback or link-local addresses (and plain http) are
    # refused unless this is set: tests only, with a push service stand-in on loopback.
    PUSH_ALLOW_PRIVATE = os.environ.get("TETHER_PUSH_ALLOW_PRIVATE") == "1"
    # A command that ends is worth a push only after running this long (the user may have looked away).
    PUSH_LONG_RUN_SECONDS = float(os.environ.get("TETHER_PUSH_LONG_RUN_SECONDS", "20"))
    # One request to a push service: seconds to connect, and to wait for each read.
    PUSH_TIMEOUT = float(os.environ.get("TETHER_PUSH_TIMEOUT", "10"))
    # Failing push services are tried this many times in all, waiting PUSH_RETRY_BASE, then twice as long...
    PUSH_ATTEMPTS = int(os.environ.get("TETHER_PUSH_ATTEMPTS", "5"))
    PUSH_RETRY_BASE = float(os.environ.get("TETHER_PUSH_RETRY_BASE", "2"))
    # Requests to push services in flight at once (each a background task).
    PUSH_WORKERS = int(os.environ.get("TETHER_PUSH_WORKERS", "4"))


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
    # Scrypt at 1/256 of the work (n=2**7): ~0.3 ms instead of ~100 ms of CPU per hash or check.
    # Tests make and sign in thousands of users; tests/test_auth.py checks the real setting.
    PASSWORD_HASH_METHOD = "scrypt:128:8:1"
    PRESENCE_INTERVAL = 0.5
    PRESENCE_TIMEOUT = 3.0
    AGENT_LOST_GRACE = 2.0
    # Tests make many apps in one process: only the fixtures that serve sockets start them.
    SERVICES_AUTOSTART = False
    # A key for tests only (raw, base64url), so that in-process apps write nothing to instance/.
    VAPID_PRIVATE_KEY = "CMhf7DQCvCWVYLJ9IptrBOQivKjqdm7WW8DP5IfP8so"
