"""A Web Push service stand-in on loopback, and the browser's half of a subscription.

`PushService` is a real HTTP server on 127.0.0.1 that records every request; the
first segment of an endpoint's path says how it answers:

    /ok/...        201 Created (a push service that took the message)
    /gone/...      410 Gone (the subscription expired)
    /fail/...      503 with Retry-After: 0
    /hang/...      nothing, until the stand-in is closed
    /redirect/...  308 to /ok/redirected (which must never be asked)
    /huge/...      201 with a 1 MiB body

`Subscriber` is what a browser keeps: an ECDH P-256 key pair and a 16-byte auth
secret. It decrypts a message with its private key (RFC 8291, aes128gcm) and
`check_vapid` verifies the Authorization header (RFC 8292), both written from the
RFCs with `cryptography` and `http_ece`, not with the server's own code.
"""

import base64
import json
import os
import threading
import time
import uuid
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import http_ece
import pytest
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, utils

from tests.harness import wait_until


def b64url(data):
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


class Subscriber:
    """A browser's side of one push subscription."""

    def __init__(self):
        self.private_key = ec.generate_private_key(ec.SECP256R1())
        self.auth_secret = os.urandom(16)

    def keys(self):
        point = self.private_key.public_key().public_bytes(
            serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
        )
        return {"p256dh": b64url(point), "auth": b64url(self.auth_secret)}

    def subscription(self, endpoint):
        """What PushSubscription.toJSON() gives."""
        return {"endpoint": endpoint, "expirationTime": None, "keys": self.keys()}

    def decrypt(self, body):
        """The plaintext of an aes128gcm message for this subscriber (RFC 8291)."""
        return http_ece.decrypt(
            body, private_key=self.private_key, auth_secret=self.auth_secret, version="aes128gcm"
        )

    def message(self, request):
        """The JSON payload of a recorded push request."""
        return json.loads(self.decrypt(request.body))


def check_vapid(authorization, audience):
    """Verify `Authorization: vapid t=JWT, k=KEY` (RFC 8292); returns (claims, k)."""
    scheme, _, rest = authorization.partition(" ")
    assert scheme.lower() == "vapid", authorization
    params = dict(part.strip().split("=", 1) for part in rest.split(","))
    token, key = params["t"], params["k"]
    signing_input, _, signature = token.rpartition(".")
    header_part, claims_part = signing_input.split(".")
    assert json.loads(unb64url(header_part)) == {"typ": "JWT", "alg": "ES256"}
    raw = unb64url(signature)
    assert len(raw) == 64, "an ES256 signature is r and s, 32 bytes each"
    der = utils.encode_dss_signature(int.from_bytes(raw[:32], "big"), int.from_bytes(raw[32:], "big"))
    public = ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), unb64url(key))
    public.verify(der, signing_input.encode(), ec.ECDSA(hashes.SHA256()))  # raises if forged
    claims = json.loads(unb64url(claims_part))
    assert claims["aud"] == audience, claims
    assert time.time() < claims["exp"] <= time.time() + 24 * 3600, claims
    assert claims["sub"].startswith(("mailto:", "https://")), claims
    return claims, key


@dataclass
class Received:
    path: str
    headers: dict
    body: bytes

    @property
    def behaviour(self):
        return self.path.split("/")[1]


class QuietServer(ThreadingHTTPServer):
    daemon_threads = True

    def handle_error(self, request, client_address):
        pass  # a client that hangs up early (the server reads a bounded answer) is no error here


class PushService:
    """The stand-in push service (see the module's docstring)."""

    def __init__(self):
        self.requests = []
        self.cond = threading.Condition()
        self.release = threading.Event()
        self.server = QuietServer(("127.0.0.1", 0), self._handler())
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        # A short poll: shutdown() waits up to one poll interval (0.5 s by default) per test.
        self.thread = threading.Thread(
            target=self.server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self.thread.start()

    def endpoint(self, behaviour="ok"):
        return f"{self.url}/{behaviour}/{uuid.uuid4().hex}"

    def received(self, behaviour=None):
        with self.cond:
            return [r for r in self.requests if behaviour is None or r.behaviour == behaviour]

    def wait_for(self, count, behaviour=None, timeout=60):
        return wait_until(
            lambda: len(self.received(behaviour)) >= count and self.received(behaviour),
            timeout,
            f"{count} push request(s) to /{behaviour or ''}",
        )

    def close(self):
        self.release.set()
        self.server.shutdown()
        self.server.server_close()

    def _record(self, request):
        with self.cond:
            self.requests.append(request)
            self.cond.notify_all()

    def _handler(self):
        service = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                request = Received(self.path, {k.lower(): v for k, v in self.headers.items()}, body)
                service._record(request)
                behaviour = request.behaviour
                if behaviour == "hang":
                    service.release.wait(120)
                    return self._answer(201)
                if behaviour == "redirect":
                    return self._answer(308, {"Location": f"{service.url}/ok/redirected"})
                if behaviour == "huge":
                    return self._answer(201, body=b"x" * (1 << 20))
                status = {"ok": 201, "gone": 410, "fail": 503}.get(behaviour, 404)
                self._answer(status, {"Retry-After": "0"} if status == 503 else {})

            def _answer(self, status, headers=None, body=b""):
                self.send_response(status)
                for name, value in (headers or {}).items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        return Handler


@pytest.fixture
def service():
    """A PushService for one test (tests/conftest.py makes this module a plugin)."""
    stand_in = PushService()
    yield stand_in
    stand_in.close()
