"""The guard on push subscription endpoints: a URL a user gives the server, which the server then POSTs to.

Without it, any user could make the server send requests into its own network
(the cloud metadata service at 169.254.169.254, an admin port on localhost, a
database on 10.x). So an endpoint must be `https`, name no user or password, and
resolve only to global addresses; it is checked when a browser subscribes, and
again on every connection: the connection goes to the very address that was
checked (no second DNS lookup an attacker's DNS could answer differently), no
redirect is ever followed, no proxy from the environment is used, and the answer
read is bounded. `TETHER_PUSH_ALLOW_PRIVATE=1` lifts the address and scheme rules
for tests with a push service stand-in on loopback.
"""

import ipaddress
import socket
from urllib.parse import urlsplit

import requests
from requests.adapters import HTTPAdapter
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

MAX_ENDPOINT_CHARS = 2048
MAX_ANSWER_BYTES = 16 * 1024  # what we read of a push service's answer (its error text, at most)


class EndpointRefused(ValueError):
    """The endpoint may not be used; the message says why, for people."""


def check_url(url, allow_private=False):
    """Refuse what is wrong with the URL itself, before any lookup. Returns (host, port)."""
    if not isinstance(url, str) or not url or len(url) > MAX_ENDPOINT_CHARS:
        raise EndpointRefused(f"the endpoint must be a URL of at most {MAX_ENDPOINT_CHARS} characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError:
        raise EndpointRefused("the endpoint is not a valid URL") from None
    allowed_schemes = ("https", "http") if allow_private else ("https",)
    if parts.scheme not in allowed_schemes:
        raise EndpointRefused("the endpoint must be an https URL")
    if parts.username is not None or parts.password is not None:
        raise EndpointRefused("the endpoint may not carry a user name or password")
    if not parts.hostname:
        raise EndpointRefused("the endpoint names no host")
    return parts.hostname, port or (443 if parts.scheme == "https" else 80)


def allowed_address(address, allow_private=False):
    """True for an address on the public internet (or any address, with allow_private)."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])  # drop an IPv6 zone
    if allow_private:
        return True
    if ip.version == 6:
        # An IPv4 address wrapped in IPv6 (::ffff:127.0.0.1, 6to4, Teredo) is judged as IPv4.
        embedded = ip.ipv4_mapped or ip.sixtofour or (ip.teredo and ip.teredo[1])
        if embedded and not allowed_address(str(embedded)):
            return False
    return ip.is_global and not ip.is_multicast


def vetted_address(host, port, allow_private=False):
    """Resolve `host`; every address it has must be allowed. Returns the one to connect to."""
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (OSError, UnicodeError):
        raise EndpointRefused(f"the endpoint's host {host} cannot be resolved") from None
    addresses = [info[4][0] for info in infos]
    refused = [address for address in addresses if not allowed_address(address, allow_private)]
    if not addresses or refused:
        raise EndpointRefused(
            f"the endpoint's host {host} is at {refused[0]}, not a public internet address"
            " (private, loopback and link-local addresses are refused)"
            if refused
            else f"the endpoint's host {host} has no address"
        )
    return addresses[0]


def check_endpoint(url, allow_private=False):
    """The whole check of a subscription's endpoint, DNS included; raises EndpointRefused."""
    host, port = check_url(url, allow_private)
    vetted_address(host, port, allow_private)


# -- sending: requests that connect only to vetted addresses ---------------------------


def _vetting(connection_class, allow_private):
    """A urllib3 connection class that checks the address it is about to connect to."""

    class Vetting(connection_class):
        def _new_conn(self):
            # urllib3 connects to `_dns_host` and keeps `host` for TLS (SNI, certificate check):
            # point the former at the checked address, so that no second lookup happens.
            self._dns_host = vetted_address(self.host, self.port, allow_private)
            return super()._new_conn()

    return Vetting


class _GuardedAdapter(HTTPAdapter):
    def __init__(self, allow_private):
        self.allow_private = allow_private
        super().__init__(max_retries=0)

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        http = type("VettingPool", (HTTPConnectionPool,), {})
        https = type("VettingTLSPool", (HTTPSConnectionPool,), {})
        http.ConnectionCls = _vetting(HTTPConnection, self.allow_private)
        https.ConnectionCls = _vetting(HTTPSConnection, self.allow_private)
        self.poolmanager.pool_classes_by_scheme = {"http": http, "https": https}


class GuardedSession(requests.Session):
    """A requests session for push services: vetted addresses, no redirects, no proxies, a bounded answer."""

    def __init__(self, allow_private=False):
        super().__init__()
        self.allow_private = allow_private
        self.trust_env = False  # an HTTP(S)_PROXY would connect somewhere we did not check
        adapter = _GuardedAdapter(allow_private)
        self.mount("https://", adapter)
        self.mount("http://", adapter)

    def get_redirect_target(self, response):
        # A redirect is an answer like any other: never followed, and its body not read whole
        # (requests reads it to reuse the connection, even with allow_redirects=False).
        return None

    def request(self, method, url, *args, **kwargs):
        check_url(url, self.allow_private)
        kwargs["allow_redirects"] = False
        kwargs["stream"] = True
        response = super().request(method, url, *args, **kwargs)
        try:
            # pywebpush reads the answer's text for its errors: keep only its start.
            response._content = response.raw.read(MAX_ANSWER_BYTES, decode_content=False) or b""
        finally:
            response.close()
        return response
