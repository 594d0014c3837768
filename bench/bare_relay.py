"""The baseline: a bare python-socketio relay on the same server stack as Tether.

    python bench/bare_relay.py --mode eventlet|gevent --port P [--max-size N]

No auth, no storage, no validation, no Flask. A client that connects with
auth {"role": "producer"} is the producer; everyone else joins the room
"consumers". Every `chunk` event from anyone is emitted to the room as is.
Served like Flask-SocketIO serves Tether: eventlet.wsgi.server on eventlet.listen
(max_size 20,000 like wsgi.py), or gevent's pywsgi.WSGIServer (WebSocket through
gevent-websocket when installed, as in Tether, else simple-websocket), with the same
ping settings.
"""

import argparse

ARGS = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
ARGS.add_argument("--mode", choices=("eventlet", "gevent"), required=True)
ARGS.add_argument("--port", type=int, required=True)
ARGS.add_argument("--max-size", type=int, default=20_000, help="eventlet's connection cap, as Tether's")
OPTIONS = ARGS.parse_args()

if OPTIONS.mode == "eventlet":
    import eventlet

    eventlet.monkey_patch()
else:
    from gevent import monkey

    monkey.patch_all()

import socketio  # noqa: E402

sio = socketio.Server(async_mode=OPTIONS.mode, cors_allowed_origins="*", ping_interval=10, ping_timeout=10)


@sio.event
def connect(sid, environ, auth=None):
    if not (isinstance(auth, dict) and auth.get("role") == "producer"):
        sio.enter_room(sid, "consumers")


@sio.on("chunk")
def chunk(sid, data):
    sio.emit("chunk", data, to="consumers")


def main():
    app = socketio.WSGIApp(sio)
    print(f"SERVING http://127.0.0.1:{OPTIONS.port} ({OPTIONS.mode})", flush=True)
    if OPTIONS.mode == "eventlet":
        import eventlet.wsgi

        listener = eventlet.listen(("127.0.0.1", OPTIONS.port))
        eventlet.wsgi.server(listener, app, log_output=False, max_size=OPTIONS.max_size)
    else:
        from gevent import pywsgi

        try:
            # engineio uses gevent-websocket whenever it is installed (as Tether's
            # socketio.run does), and then needs its handler to see a WebSocket at all.
            from geventwebsocket.handler import WebSocketHandler
        except ImportError:  # engineio falls back to simple-websocket
            WebSocketHandler = pywsgi.WSGIHandler
        pywsgi.WSGIServer(
            ("127.0.0.1", OPTIONS.port), app, log=None, handler_class=WebSocketHandler
        ).serve_forever()


if __name__ == "__main__":
    main()
