"""Production entry point: `python wsgi.py` serves Tether under eventlet or gevent.

`flask --app wsgi run` imports this module too; it then gets the development
server (threading, WebSocket through simple-websocket) and no monkey-patching.
"""

import os

if __name__ == "__main__":
    # Monkey-patching must come before anything else imports socket or threading.
    ASYNC_MODE = os.environ.get("TETHER_ASYNC_MODE", "gevent")
    if ASYNC_MODE == "eventlet":
        import warnings

        # Its deprecation notice is known (docs/performance.md); keep stderr to our own lines.
        warnings.filterwarnings("ignore", message="Eventlet is deprecated")
        import eventlet

        eventlet.monkey_patch()
        # psycopg 3 waits for PostgreSQL in C unless it sees gevent's patching: under eventlet
        # that wait would stop every green thread, and a query waiting on a lock that another
        # green thread holds would never return. Its select-based wait goes through eventlet's hub.
        os.environ.setdefault("PSYCOPG_WAIT_FUNC", "wait_select")
    elif ASYNC_MODE == "gevent":
        from gevent import monkey

        monkey.patch_all()
    else:
        raise SystemExit(f"TETHER_ASYNC_MODE must be eventlet or gevent, not {ASYNC_MODE!r}")

from app import SERVER_ID, create_app, socketio  # noqa: E402
from config import ProductionConfig  # noqa: E402


def main():
    try:
        ProductionConfig.check()
    except RuntimeError as error:
        raise SystemExit(f"error: {error}") from None
    app = create_app(ProductionConfig, async_mode=ASYNC_MODE)
    host = os.environ.get("TETHER_HOST", "127.0.0.1")
    port = int(os.environ.get("TETHER_PORT", "5000"))
    # The process id names this process in shared presence state (agents.server_id).
    print(f"Tether serving on http://{host}:{port} ({ASYNC_MODE}), process {SERVER_ID}", flush=True)
    options = {}
    if ASYNC_MODE == "eventlet":
        # eventlet.wsgi serves at most 1,024 connections at once by default.
        options["max_size"] = int(os.environ.get("TETHER_MAX_CONNECTIONS", "20000"))
    socketio.run(app, host=host, port=port, log_output=False, **options)


if __name__ == "__main__":
    main()
else:
    app = create_app()
