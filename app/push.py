"""Web Push: the VAPID key, browsers' subscriptions, one push per (user, event), and the sender.

- The VAPID key pair (RFC 8292) is made once into the instance folder, or given by
  TETHER_VAPID_PRIVATE_KEY; browsers subscribe with its public half (`GET /push/key`).
- A subscription is stored per user and browser (its endpoint is unique), after the
  endpoint guard (app/push_guard.py) has passed it.
- `push_to_user` claims (user, event key) with a row of `notifications_sent` before
  anything is sent: a second claim of the same event, from a replay, a reconnect, a
  restart or another server process, finds the row and sends nothing.
- `PushSender` sends from background tasks, never from the code that noticed the
  event: pywebpush encrypts (RFC 8291, aes128gcm) and signs, the guarded session
  carries the request. 404 and 410 delete the subscription; 429, 5xx and network
  failures are tried again with exponential backoff (the scheduler's `push retries`
  job puts them back in the queue when due); anything else is logged and dropped.

What to push and to whom is decided in app/notify.py.
"""

import base64
import email.utils
import hashlib
import heapq
import itertools
import json
import logging
import os
import time
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import requests
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from flask import current_app
from marshmallow import RAISE, Schema, ValidationError, fields, validate
from py_vapid import Vapid
from pywebpush import WebPushException, webpush
from sqlalchemy.exc import IntegrityError

from app import current_services, db, socketio
from app.background import QueueTasks, end_session
from app.models import NotificationSent, NotificationSettings, PushSubscription, utcnow
from app.push_guard import MAX_ENDPOINT_CHARS, EndpointRefused, GuardedSession, check_endpoint

log = logging.getLogger("tether.push")

# Push services take 4,096 bytes of encrypted payload; ours stays well below.
MAX_PAYLOAD_BYTES = 2048
MAX_TITLE_CHARS = 120
MAX_BODY_CHARS = 600
MAX_SUBSCRIPTIONS_PER_USER = 10  # one more replaces the oldest
MAX_RETRY_DELAY = 600.0
SENT_KEPT_FOR = timedelta(days=7)  # an event older than this is never announced again anyway
TEST_EVERY = 10  # seconds between two test pushes of one user
KEY_FILE = "vapid_private_key.pem"


# -- the VAPID key -------------------------------------------------------------------------


def vapid(app=None):
    """The server's VAPID key (a py_vapid object), loaded once per app."""
    app = app or current_app
    key = app.extensions.get("tether_vapid")
    if key is None:
        key = app.extensions["tether_vapid"] = Vapid(_private_key(app))
    return key


def public_key(app=None):
    """The application server key browsers subscribe with: the public point, base64url."""
    point = vapid(app).public_key.public_bytes(
        serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint
    )
    return base64.urlsafe_b64encode(point).rstrip(b"=").decode()


def _private_key(app):
    given = app.config.get("VAPID_PRIVATE_KEY")
    if given:
        return _load_key(given.strip().encode())
    path = Path(app.instance_path) / KEY_FILE
    if not path.exists():
        _create_key_file(path)
    return _load_key(path.read_bytes())


def _load_key(text):
    """A P-256 private key from PEM, or from base64url DER or raw (what vapid tools print)."""
    if text.startswith(b"-----BEGIN"):
        return serialization.load_pem_private_key(text, password=None)
    return Vapid.from_string(text.decode()).private_key


def _create_key_file(path):
    """Write a new key atomically; if another process got there first, theirs is kept."""
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "wb") as file:
        file.write(pem)
    try:
        os.link(temporary, path)
    except FileExistsError:
        pass
    finally:
        temporary.unlink()


# -- subscriptions ---------------------------------------------------------------------------


class SubscriptionKeys(Schema):
    class Meta:
        unknown = RAISE

    p256dh = fields.String(required=True, validate=validate.Length(min=1, max=128))
    auth = fields.String(required=True, validate=validate.Length(min=1, max=64))


class SubscriptionIn(Schema):
    """A browser's PushSubscription.toJSON()."""

    class Meta:
        unknown = RAISE

    endpoint = fields.String(required=True, validate=validate.Length(min=1, max=MAX_ENDPOINT_CHARS))
    keys = fields.Nested(SubscriptionKeys, required=True)
    expirationTime = fields.Float(allow_none=True)


class SubscriptionError(ValueError):
    """A subscription that cannot be stored; `fields` says which part is wrong."""

    def __init__(self, message, fields):
        super().__init__(message)
        self.fields = fields


def _load_subscription(data, keys_required=True):
    try:
        loaded = SubscriptionIn().load(data, partial=() if keys_required else ("keys",))
    except ValidationError as error:
        raise SubscriptionError("invalid push subscription", error.messages) from None
    if keys_required:
        _check_keys(loaded["keys"])
    return loaded


def _b64url(text):
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _check_keys(keys):
    """p256dh must be a P-256 point and auth 16 bytes: otherwise every push would fail to encrypt."""
    try:
        ec.EllipticCurvePublicKey.from_encoded_point(ec.SECP256R1(), _b64url(keys["p256dh"]))
    except (ValueError, TypeError):
        raise SubscriptionError(
            "invalid push subscription", {"keys": {"p256dh": ["Not a P-256 key."]}}
        ) from None
    try:
        auth = _b64url(keys["auth"])
    except ValueError:
        auth = b""
    if len(auth) != 16:
        raise SubscriptionError("invalid push subscription", {"keys": {"auth": ["Not 16 bytes."]}})


def _endpoint_hash(endpoint):
    return hashlib.sha256(endpoint.encode()).hexdigest()


def save_subscription(user_id, data):
    """Store (or take over) a browser's subscription for `user_id`. Raises SubscriptionError.

    An endpoint belongs to one browser: subscribing it again, by whichever user is
    signed in there now, makes it theirs.
    """
    loaded = _load_subscription(data)
    endpoint = loaded["endpoint"]
    try:
        check_endpoint(endpoint, current_app.config["PUSH_ALLOW_PRIVATE"])
    except EndpointRefused as error:
        raise SubscriptionError(str(error), {"endpoint": [str(error)]}) from None
    subscription = db.session.scalar(
        db.select(PushSubscription).filter_by(endpoint_hash=_endpoint_hash(endpoint))
    ) or PushSubscription(endpoint=endpoint, endpoint_hash=_endpoint_hash(endpoint))
    subscription.user_id = user_id
    subscription.p256dh = loaded["keys"]["p256dh"]
    subscription.auth = loaded["keys"]["auth"]
    subscription.created_at = utcnow()  # the newest are kept: a browser seen again counts as new
    db.session.add(subscription)
    db.session.flush()
    _keep_newest(user_id)
    try:
        db.session.commit()
    except IntegrityError:  # the same browser subscribed twice at once: the other one won
        db.session.rollback()
    return subscription


def _keep_newest(user_id):
    ids = db.session.scalars(
        db.select(PushSubscription.id)
        .filter_by(user_id=user_id)
        .order_by(PushSubscription.created_at.desc(), PushSubscription.id.desc())
    ).all()
    for old in ids[MAX_SUBSCRIPTIONS_PER_USER:]:
        db.session.execute(db.delete(PushSubscription).filter_by(id=old))


def remove_subscription(user_id, data):
    """Forget a browser's subscription of `user_id`; True if there was one."""
    endpoint = _load_subscription(data, keys_required=False)["endpoint"]
    removed = db.session.execute(
        db.delete(PushSubscription).filter_by(user_id=user_id, endpoint_hash=_endpoint_hash(endpoint))
    ).rowcount
    db.session.commit()
    return bool(removed)


def subscriptions_of(user_id):
    return db.session.scalars(db.select(PushSubscription).filter_by(user_id=user_id)).all()


# -- per-user settings -------------------------------------------------------------------------


def settings_of(user_id):
    """The user's settings (defaults, not stored, when they never changed them)."""
    return db.session.get(NotificationSettings, user_id) or NotificationSettings(
        user_id=user_id, permission=True, finished=True
    )


def save_settings(user_id, permission, finished):
    settings = db.session.get(NotificationSettings, user_id) or NotificationSettings(user_id=user_id)
    settings.permission = bool(permission)
    settings.finished = bool(finished)
    db.session.add(settings)
    db.session.commit()
    return settings


# -- one push per (user, event) -------------------------------------------------------------------


def payload(title, body, url, tag):
    """The message a service worker gets: JSON {title, body, url, tag}, at most MAX_PAYLOAD_BYTES."""
    title, body = _cut(title, MAX_TITLE_CHARS), _cut(body, MAX_BODY_CHARS)
    while True:
        data = json.dumps({"title": title, "body": body, "url": url, "tag": tag}, ensure_ascii=False).encode()
        if len(data) <= MAX_PAYLOAD_BYTES or not body:
            return data
        body = _cut(body, len(body) // 2)


def _cut(text, limit):
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def claim(user_id, event_key):
    """Record that `event_key` is pushed to `user_id`; False if it was already (by anyone, ever)."""
    db.session.add(NotificationSent(user_id=user_id, event_key=event_key[:100]))
    try:
        db.session.commit()
        return True
    except IntegrityError:
        db.session.rollback()
        return False


def push_to_user(user_id, event_key, data, urgency="normal", ttl=3600, topic=None):
    """Queue `data` for every browser of the user, once per event key. Returns how many were queued."""
    subscriptions = subscriptions_of(user_id)
    if not subscriptions or not claim(user_id, event_key):
        return 0
    sender = current_services().push
    for subscription in subscriptions:
        sender.put(
            Delivery(subscription.id, subscription.to_webpush(), data, ttl=ttl, urgency=urgency, topic=topic)
        )
    return len(subscriptions)


def send_test(user_id):
    """A test push to every browser of the user; None when the last one was under TEST_EVERY s ago."""
    if not subscriptions_of(user_id):
        return 0
    if _tested_since(user_id, utcnow() - timedelta(seconds=TEST_EVERY)):
        return None
    data = payload("Tether", "Notifications reach this browser.", "/account", "tether-test")
    # The claim's key names the TEST_EVERY-second window: two clicks at once, even on two server
    # processes, claim it once. The look above covers two clicks on either side of a window's end.
    count = push_to_user(user_id, f"test:{int(time.time() // TEST_EVERY)}", data, ttl=600)
    return count or None


def _tested_since(user_id, since):
    """True if a test push of the user was claimed after `since`."""
    claimed = db.select(NotificationSent.id).filter(
        NotificationSent.user_id == user_id,
        NotificationSent.event_key.startswith("test:"),
        NotificationSent.created_at > since,
    )
    return db.session.scalar(claimed.limit(1)) is not None


def prune_sent(app):
    """Forget claims old enough that their events cannot come back (a scheduled job)."""
    db.session.execute(
        db.delete(NotificationSent).filter(NotificationSent.created_at < utcnow() - SENT_KEPT_FOR)
    )
    db.session.commit()


# -- the sender ------------------------------------------------------------------------------------


@dataclass
class Delivery:
    """One encrypted POST to one push service, and how many times it was tried."""

    subscription_id: int
    info: dict = field(repr=False)  # endpoint and keys
    data: bytes = field(repr=False)
    ttl: int = 3600
    urgency: str = "normal"
    topic: str | None = None
    attempt: int = 1
    due: float = 0.0  # time.monotonic() of the next attempt


class PushSender(QueueTasks):
    """PUSH_WORKERS background tasks that POST deliveries; a slow push service holds one of them."""

    def __init__(self, app):
        super().__init__(app)
        self.retries = None  # failed deliveries, handed from the workers to `requeue_due`
        self.waiting = []  # heap of deliveries waiting for their next attempt (requeue_due only)
        self.order = itertools.count()

    def task_count(self):
        return self.app.config["PUSH_WORKERS"]

    def start(self):
        if not self.started:
            self.retries = socketio.server.eio.create_queue()  # before a worker can fail
        super().start()

    def _run(self):
        while True:
            delivery = self.queue.get()
            if delivery is None:
                return
            try:
                self._deliver(delivery)
            except Exception:  # a worker must outlive any one delivery
                log.exception("push to subscription %s failed", delivery.subscription_id)

    def _deliver(self, delivery):
        outcome, retry_after = send(self.app, delivery)
        if outcome == "gone":
            with self.app.app_context():
                try:
                    db.session.execute(db.delete(PushSubscription).filter_by(id=delivery.subscription_id))
                    db.session.commit()
                finally:
                    end_session()
            log.info("push subscription %s has expired: deleted", delivery.subscription_id)
        elif outcome == "retry" and delivery.attempt < self.app.config["PUSH_ATTEMPTS"]:
            delay = self.app.config["PUSH_RETRY_BASE"] * 2 ** (delivery.attempt - 1)
            delivery.due = time.monotonic() + min(max(delay, retry_after or 0), MAX_RETRY_DELAY)
            delivery.attempt += 1
            self.retries.put(delivery)

    def requeue_due(self, app=None):
        """Put the deliveries whose backoff is over back in the queue (a scheduled job)."""
        if not self.started:
            return
        while not self.retries.empty():
            delivery = self.retries.get()
            heapq.heappush(self.waiting, (delivery.due, next(self.order), delivery))
        now = time.monotonic()
        while self.waiting and self.waiting[0][0] <= now:
            self.queue.put(heapq.heappop(self.waiting)[2])


def send(app, delivery):
    """POST one delivery. Returns (outcome, retry_after): sent, gone, retry or dropped."""
    config = app.config
    headers = {"Urgency": delivery.urgency}
    if delivery.topic:
        headers["Topic"] = delivery.topic
    try:
        webpush(
            delivery.info,
            data=delivery.data,
            vapid_private_key=vapid(app),
            vapid_claims={"sub": config["VAPID_SUBJECT"]},  # pywebpush adds aud and exp
            ttl=delivery.ttl,
            timeout=config["PUSH_TIMEOUT"],
            headers=headers,
            requests_session=GuardedSession(config["PUSH_ALLOW_PRIVATE"]),
        )
        return "sent", None
    except WebPushException as error:
        return _judge(delivery, error.status_code, error.response)
    except EndpointRefused as error:
        log.warning("push to subscription %s refused: %s", delivery.subscription_id, error)
        return "dropped", None
    except requests.RequestException as error:
        log.info(
            "push to subscription %s failed (attempt %d): %s",
            delivery.subscription_id,
            delivery.attempt,
            error,
        )
        return "retry", None


def _judge(delivery, status, response):
    if status in (404, 410):
        return "gone", None
    if status == 429 or (status or 0) >= 500:
        log.info("push service answered %s (attempt %d)", status, delivery.attempt)
        return "retry", _retry_after(response)
    # 3xx (never followed), 400, 401, 403, 413: trying again would not help.
    log.warning("push to subscription %s refused by its service: %s", delivery.subscription_id, status)
    return "dropped", None


def _retry_after(response):
    """Seconds from a Retry-After header (a number or an HTTP date), if any."""
    value = response.headers.get("Retry-After") if response is not None else None
    if not value:
        return None
    if value.strip().isdigit():
        return float(value)
    try:
        return max(0.0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None
