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

from app import outbound, socketio, transport
from protocol import WEB_NAMESPACE, Events

log = logging.getLogger("tether.delivery")
REPLAY_PAGE = 500
REPLAY_PATIENCE = 10.0  # seconds a replay waits for a full send queue before giving up
REPLAY_POLL = 0.01  # seconds between looks at a full send queue


def make_client_manager(delivery, app):
    """The Socket.IO client manager whose room emits of results go through `delivery`."""
    return transport.make_client_manager(
        delivery.live,
        Events.COMMAND_RESULT,
        WEB_NAMESPACE,
        message_queue=app.config["MESSAGE_QUEUE"],
        channel=app.config["MESSAGE_QUEUE_CHANNEL"],
    )


class Subscription:
    """One browser socket following one session: its cursor and a lock that orders sends."""

    def __init__(self, sid, session_id, cursor):
        self.sid = sid
        self.session_id = session_id
        self.cursor = cursor
        self.stalled_at = None  # the cursor at which the last tail check found it behind
        # While a replay runs, it alone sends to this subscription: live results are
        # in storage already, and the replay's last page takes them.
        self.replaying = False
        self.lock = threading.Lock()
        self._outlet = None

    def outlet(self):
        """The socket's send queue (transport.Outlet), found on first use; None if it is gone."""
        if self._outlet is None:
            self._outlet = transport.Outlet.of(self.sid, WEB_NAMESPACE)
        return self._outlet


class SessionDelivery:
    """This process's subscriptions, by session."""

    def __init__(self, app):
        self.app = app
        self._by_session = {}  # session_id -> {sid: Subscription}
        self._replaying = {}  # sid -> lock: one replay at a time per socket
        # Sockets being cut off: until their disconnect runs, nothing more is sent or read from
        # storage for them (each new result would otherwise query the growing gap again).
        self._cut_off = set()
        self._lock = threading.Lock()

    def _over(self, waiting, share=1.0):
        """True if (packets, bytes) waiting fill `share` of the send queue's limits."""
        packets, size = waiting
        config = self.app.config
        return packets > config["MAX_SEND_QUEUE"] * share or size > config["MAX_SEND_QUEUE_BYTES"] * share

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
            replaying = self._replaying.setdefault(sid, threading.Lock())
        with replaying:
            with subscription.lock:
                # A re-subscribe moves the cursor back so that the replay covers it.
                subscription.cursor = after_seq
            return self._replay(subscription)

    def _replay(self, subscription):
        """Send what is stored after the cursor, a page at a time, paced by the send queue.

        A replay fills at most half of the socket's queue and waits for room
        otherwise: the replays the server queues itself never make a reading browser
        look stuck. The wait happens outside the subscription's lock: live delivery,
        which takes that lock from the chunk writer, never waits on a slow reader.
        """
        subscription.replaying = True
        try:
            while True:
                room = self._room_in_queue(subscription)
                if room is None:
                    return subscription.cursor
                with subscription.lock:
                    _, more = self._send_page(subscription, None, min(REPLAY_PAGE, room), replay=True)
                if not more:
                    break
        finally:
            with subscription.lock:
                subscription.replaying = False
                # What was stored while the last page went out, which live delivery skipped.
                last_seq = self._catch_up(subscription)
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

    def follows(self):
        """Every (sid, session id) this process delivers to."""
        with self._lock:
            return [(sid, session_id) for session_id, subs in self._by_session.items() for sid in subs]

    def drop(self, sid):
        """Forget a disconnected socket."""
        with self._lock:
            self._replaying.pop(sid, None)
            self._cut_off.discard(sid)
            for session_id in [s for s, subs in self._by_session.items() if sid in subs]:
                del self._by_session[session_id][sid]
                if not self._by_session[session_id]:
                    del self._by_session[session_id]

    def catch_up_all(self, app=None):
        """Send every subscriber what storage has beyond its cursor (a scheduled job).

        Live results can be lost on the way between processes (Redis restarting);
        a later result reveals the gap, but nothing reveals a lost *last* result.
        """
        from app.storage import session_heads

        with self._lock:
            subscriptions = [sub for subs in self._by_session.values() for sub in subs.values()]
        if not subscriptions:
            return
        with self.app.app_context():
            heads = session_heads({sub.session_id for sub in subscriptions})
        for subscription in subscriptions:
            if subscription.replaying:
                continue
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
        packets = transport.encode_event(WEB_NAMESPACE, Events.COMMAND_RESULT, message)
        seq = message["seq"]
        for subscription in subscribers:
            if subscription.sid in self._cut_off:
                continue
            with subscription.lock:
                if seq <= subscription.cursor or subscription.replaying:
                    continue  # already sent by a replay or catch-up, or the replay will send it
                if seq > subscription.cursor + 1:
                    log.info(
                        "session %s: results %d..%d missed live; sending them from storage",
                        subscription.session_id,
                        subscription.cursor + 1,
                        seq - 1,
                    )
                    self._catch_up(subscription, upto=seq - 1)
                if seq == subscription.cursor + 1 and self._send(subscription, packets):
                    subscription.cursor = seq

    def _catch_up(self, subscription, upto=None):
        """Send stored results after the cursor (up to `upto`), in order; the caller holds the lock."""
        while True:
            last_seq, more = self._send_page(subscription, upto, REPLAY_PAGE)
            if not more:
                return last_seq

    def _send_page(self, subscription, upto, page, replay=False):
        """One page of stored results after the cursor. Returns (last stored seq, more to send?)."""
        from app.storage import stored_results

        with self.app.app_context():
            results, last_seq = stored_results(subscription.session_id, subscription.cursor, upto, page)
        for message in results:
            packets = transport.encode_event(WEB_NAMESPACE, Events.COMMAND_RESULT, message)
            if not self._send(subscription, packets, cut_off_when_full=not replay):
                return last_seq, False
            subscription.cursor = message["seq"]
        return last_seq, len(results) == page

    def _send(self, subscription, packets, cut_off_when_full=True):
        """Queue packets for one subscriber's socket; a socket that is not reading gets cut off.

        The browser reconnects and catches up from storage by seq, so dropping a
        stuck socket loses nothing and keeps this process's memory bounded.
        """
        outlet = subscription.outlet()
        waiting = outlet and outlet.waiting()
        if waiting is None:
            return False
        if cut_off_when_full and self._over(waiting):
            self._cut(subscription.sid, "is not reading")
            return False
        return outlet.send(packets)

    def _room_in_queue(self, subscription, patience=REPLAY_PATIENCE):
        """How many packets a replay may add to the socket's queue: it fills at most half of it
        (in packets and in bytes), so the other half stays for live results.

        Waits while the queue is that full; None if the socket is gone, or read nothing for
        `patience` seconds (then it is cut off: a browser that reads does not stall that long).
        """
        half = max(1, self.app.config["MAX_SEND_QUEUE"] // 2)
        waited = 0.0
        while waited < patience:
            outlet = subscription.outlet()
            waiting = outlet and outlet.waiting()
            if waiting is None:
                return None
            if not self._over(waiting, share=0.5):
                return max(1, half - waiting[0])
            socketio.sleep(REPLAY_POLL)
            waited += REPLAY_POLL
        self._cut(subscription.sid, f"read nothing for {patience:.0f} s of replay")
        return None

    def _cut(self, sid, why):
        """Disconnect a socket that does not read, once: the page reconnects and catches up."""
        with self._lock:
            if sid in self._cut_off:
                return
            self._cut_off.add(sid)
        log.warning("socket %s %s; disconnecting it", sid, why)
        outbound.disconnect_browser_later(sid)
