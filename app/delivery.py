"""Ordered, gap-free delivery of stored results to each subscribed browser.

Every `command_result` has a per-session `seq`. Each (browser socket, session)
pair keeps a cursor: the last seq that socket was sent. A live result that is
not `cursor + 1` is either a duplicate (dropped) or reveals a gap, which is filled
from storage before the live result goes out. That one mechanism gives:

- subscribe with `afterSeq`: replay from storage, then live, no gap, no duplicate;
- healing of results lost on the way (a Redis blip in a multi-process setup).

The hook sits in the Socket.IO client manager, at the point where a room emit is
delivered to this process's own sockets, so with Redis every process heals its
own subscribers. The packet is encoded once per result, not once per browser.
"""

import logging
import threading

import socketio
from engineio import packet as eio_packet
from socketio import packet as sio_packet

from protocol import WEB_NAMESPACE, Events

log = logging.getLogger("tether.delivery")
REPLAY_PAGE = 500
REPLAY_PATIENCE = 10.0  # seconds a replay waits for a full send queue before giving up


def make_client_manager(app):
    delivery = SessionDelivery(app)
    app.extensions["tether_delivery"] = delivery
    url = app.config["MESSAGE_QUEUE"]
    if url:
        return RedisDeliveryManager(delivery, url, channel=app.config["MESSAGE_QUEUE_CHANNEL"])
    return LocalDeliveryManager(delivery)


def _is_session_result(event, namespace):
    return event == Events.COMMAND_RESULT and namespace == WEB_NAMESPACE


class LocalDeliveryManager(socketio.Manager):
    """Single process: results go through the session cursors."""

    def __init__(self, delivery):
        super().__init__()
        self.delivery = delivery
        delivery.manager = self

    def emit(self, event, data, namespace, room=None, skip_sid=None, callback=None, to=None, **kw):
        if _is_session_result(event, namespace):
            return self.delivery.live(data)
        return super().emit(event, data, namespace, room, skip_sid, callback, to, **kw)


class RedisDeliveryManager(socketio.RedisManager):
    """Several processes: each process delivers what Redis brings to its own sockets."""

    def __init__(self, delivery, url, channel):
        super().__init__(url, channel=channel)
        self.delivery = delivery
        delivery.manager = self

    def _handle_emit(self, message):
        if _is_session_result(message.get("event"), message.get("namespace")):
            data = message["data"]  # the pub/sub manager wraps the payload in a list
            return self.delivery.live(data[0] if isinstance(data, list) else data)
        return super()._handle_emit(message)


class Subscription:
    """One browser socket following one session: its cursor and a lock that orders sends."""

    def __init__(self, sid, session_id, cursor):
        self.sid = sid
        self.session_id = session_id
        self.cursor = cursor
        self.stalled_at = None  # the cursor at which the last tail check found it behind
        self.lock = threading.Lock()


class SessionDelivery:
    """This process's subscriptions, by session."""

    def __init__(self, app):
        self.app = app
        self.manager = None
        self._by_session = {}  # session_id -> {sid: Subscription}
        self._lock = threading.Lock()

    # -- subscribing -------------------------------------------------------

    def subscribe(self, sid, session_id, after_seq):
        """Follow a session from `after_seq`: replays what is stored, then goes live.

        Returns the highest stored seq at subscription time.
        """
        with self._lock:
            subscription = self._by_session.setdefault(session_id, {}).get(sid)
            if subscription is None:
                subscription = Subscription(sid, session_id, after_seq)
                self._by_session[session_id][sid] = subscription
        with subscription.lock:
            # A re-subscribe moves the cursor back so that the replay covers it.
            subscription.cursor = after_seq
        return self._replay(subscription)

    def _replay(self, subscription):
        """Send what is stored after the cursor, a page at a time, pacing on the send queue.

        The wait for room happens outside the subscription's lock: live delivery,
        which takes that lock from the chunk writer, must never wait on a slow reader.
        """
        page = max(1, min(REPLAY_PAGE, self.app.config["MAX_SEND_QUEUE"] // 2))
        while True:
            with subscription.lock:
                last_seq, more = self._send_page(subscription, None, page)
            if not more:
                return last_seq
            if not self._wait_for_room(subscription.sid):
                return last_seq

    def follow_from(self, sid, session_id, cursor):
        """Follow a session live from `cursor` without replaying (the sender of a new command)."""
        with self._lock:
            sessions = self._by_session.setdefault(session_id, {})
            if sid not in sessions:
                sessions[sid] = Subscription(sid, session_id, cursor)

    def unsubscribe(self, sid, session_id):
        with self._lock:
            subscribers = self._by_session.get(session_id, {})
            subscribers.pop(sid, None)
            if not subscribers:
                self._by_session.pop(session_id, None)

    def drop(self, sid):
        """Forget a disconnected socket."""
        with self._lock:
            for session_id in [s for s, subs in self._by_session.items() if sid in subs]:
                del self._by_session[session_id][sid]
                if not self._by_session[session_id]:
                    del self._by_session[session_id]

    def subscribed(self, sid, session_id):
        return sid in self._by_session.get(session_id, {})

    def catch_up_all(self):
        """Send every subscriber what storage has beyond its cursor.

        Live results can be lost on the way between processes (Redis restarting);
        a later result reveals the gap, but nothing reveals a lost *last* result.
        The presence loop calls this every few seconds to close such tails.
        """
        from app.storage import session_heads

        with self._lock:
            subscriptions = [sub for subs in self._by_session.values() for sub in subs.values()]
        if not subscriptions:
            return
        with self.app.app_context():
            heads = session_heads({sub.session_id for sub in subscriptions})
        for subscription in subscriptions:
            behind = heads.get(subscription.session_id, 0) > subscription.cursor
            # Behind twice at the same cursor: live delivery is not coming.
            if behind and subscription.stalled_at == subscription.cursor:
                log.info(
                    "session %s: subscriber stalled behind storage; catching up", subscription.session_id
                )
                with subscription.lock:
                    self._catch_up(subscription)
            subscription.stalled_at = subscription.cursor if behind else None

    # -- delivering --------------------------------------------------------

    def live(self, message):
        """Deliver one stored result to this process's subscribers of its session."""
        subscribers = list(self._by_session.get(message["sessionId"], {}).values())
        if not subscribers:
            return
        packets = self._encode(message)
        seq = message["seq"]
        for subscription in subscribers:
            with subscription.lock:
                if seq <= subscription.cursor:
                    continue  # already sent by a replay or catch-up
                if seq > subscription.cursor + 1:
                    log.info(
                        "session %s: results %d..%d missed live; sending them from storage",
                        subscription.session_id,
                        subscription.cursor + 1,
                        seq - 1,
                    )
                    self._catch_up(subscription, upto=seq - 1)
                if seq == subscription.cursor + 1 and self._send(subscription.sid, packets):
                    subscription.cursor = seq

    def _catch_up(self, subscription, upto=None):
        """Send stored results after the cursor (up to `upto`), in order; the caller holds the lock."""
        while True:
            last_seq, more = self._send_page(subscription, upto, REPLAY_PAGE)
            if not more:
                return last_seq

    def _send_page(self, subscription, upto, page):
        """One page of stored results after the cursor. Returns (last stored seq, more to send?)."""
        from app.storage import stored_results

        with self.app.app_context():
            results, last_seq = stored_results(subscription.session_id, subscription.cursor, upto, page)
        for message in results:
            if not self._send(subscription.sid, self._encode(message)):
                return last_seq, False
            subscription.cursor = message["seq"]
        return last_seq, len(results) == page

    def _encode(self, message):
        pkt = sio_packet.Packet(
            sio_packet.EVENT, namespace=WEB_NAMESPACE, data=[Events.COMMAND_RESULT, message]
        )
        return [eio_packet.Packet(eio_packet.MESSAGE, pkt.encode())]

    def _send(self, sid, packets):
        """Queue packets for one socket; a socket that is not reading gets cut off.

        The browser reconnects and catches up from storage by seq, so dropping a
        stuck socket loses nothing and keeps this process's memory bounded.
        """
        server = self.manager.server
        eio_sid, eio_socket = self._eio_socket(sid)
        if eio_socket is None:
            return False
        if eio_socket.queue.qsize() > self.app.config["MAX_SEND_QUEUE"]:
            log.warning("socket %s is not reading; disconnecting it", sid)
            server.start_background_task(server.disconnect, sid, namespace=WEB_NAMESPACE)
            return False
        for packet in packets:
            server._send_eio_packet(eio_sid, packet)
        return True

    def _eio_socket(self, sid):
        """(Engine.IO sid, Engine.IO socket) of a /web socket, or (None, None) once it is gone."""
        eio_sid = self.manager.eio_sid_from_sid(sid, WEB_NAMESPACE)
        return eio_sid, self.manager.server.eio.sockets.get(eio_sid) if eio_sid else None

    def _wait_for_room(self, sid, patience=REPLAY_PATIENCE):
        """Wait until the socket's send queue is half empty; False if it is gone or stuck."""
        limit = self.app.config["MAX_SEND_QUEUE"] // 2
        waited = 0.0
        while waited < patience:
            _, eio_socket = self._eio_socket(sid)
            if eio_socket is None:
                return False
            if eio_socket.queue.qsize() <= limit:
                return True
            self.manager.server.sleep(0.05)
            waited += 0.05
        return True  # let the next page find the queue full and cut the socket off
