"""The app's WSGI entry: Socket.IO's requests go straight to the Socket.IO server, the rest to Flask.

A WebSocket's reader greenlet stays inside this call for as long as the socket is
open, and every WSGI layer between the web server and Engine.IO is C stack that the
greenlet keeps, copied to the heap whenever another greenlet runs. The three layers
this replaces (a polling guard, the compression refusal and Flask-SocketIO's
middleware, each a call of its own) cost about 6 KB per idle connection, a tenth of
it (docs/performance.md, "Idle connections"): here they are one call.
"""

from app.security import polling_post_refusal

SOCKETIO_PATH = "/socket.io/"


class WSGIEntry:
    def __init__(self, app, socketio_server, max_post_bytes):
        self.app = app
        self.wsgi_app = app.extensions["tether_flask_wsgi"]  # Flask's own, without Flask-SocketIO's layer
        self.socketio_server = socketio_server
        self.max_post_bytes = max_post_bytes

    def __call__(self, environ, start_response):
        if not environ.get("PATH_INFO", "").startswith(SOCKETIO_PATH):
            return self.wsgi_app(environ, start_response)
        if environ.get("REQUEST_METHOD") == "POST":
            refusal = polling_post_refusal(environ, self.max_post_bytes)
            if refusal:
                start_response(refusal, [("Content-Type", "text/plain"), ("Connection", "close")])
                return [refusal.encode()]
        # permessage-deflate refused: browsers always offer it and the WebSocket servers accept
        # it, but it compresses every message once per socket; with 100 browsers on a session the
        # fan-out rate fell to 0.4x (docs/performance.md). Our messages are small JSON.
        environ.pop("HTTP_SEC_WEBSOCKET_EXTENSIONS", None)
        environ["flask.app"] = self.app  # where Flask-SocketIO's handlers find the app
        return self.socketio_server.handle_request(environ, start_response)
