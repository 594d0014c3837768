"""The python-socketio and python-engineio internals that delivery relies on, and nothing else.

Ordered delivery (app/delivery.py) needs three things the libraries do not
offer publicly: to see a room emit of `command_result` before it is delivered
(locally and as it arrives from Redis), to send a packet encoded once to many
sockets, and to know how much already waits in one socket's send queue (`Outlet`). Each is
reached here only; `missing_internals()` names any that an upgrade of the
libraries took away, and tests/test_transport_adapter.py fails loudly on it.
"""

import socketio
from engineio import packet as eio_packet
from engineio import socket as eio_socket_module
from socketio import packet as sio_packet

from app import socketio as flask_socketio

# (object, attribute) pairs this module uses beyond the libraries' public API.
INTERNALS = (
    (socketio.Server, "_send_eio_packet"),
    (socketio.Manager, "eio_sid_from_sid"),
    (socketio.PubSubManager, "_handle_emit"),
    (sio_packet.Packet, "encode"),
    (eio_packet.Packet, "__init__"),
    (eio_socket_module.Socket, "send"),
)


def missing_internals():
    """The internals this module needs that the installed libraries lack (empty when all is well)."""
    return [
        f"{owner.__module__}.{owner.__name__}.{name}" for owner, name in INTERNALS if not hasattr(owner, name)
    ]


def make_client_manager(on_session_result, session_result_event, namespace, message_queue=None, channel=None):
    """A client manager that hands every `session_result_event` room emit on `namespace` to
    `on_session_result(message)` instead of delivering it, on this process and, with a
    message queue, as it arrives from every other process."""

    def intercepted(event, event_namespace):
        return event == session_result_event and event_namespace == namespace

    if message_queue:
        return _RedisHook(on_session_result, intercepted, message_queue, channel)
    return _LocalHook(on_session_result, intercepted)


class _LocalHook(socketio.Manager):
    def __init__(self, on_session_result, intercepted):
        super().__init__()
        self.on_session_result = on_session_result
        self.intercepted = intercepted

    def emit(self, event, data, namespace, room=None, skip_sid=None, callback=None, to=None, **kw):
        if self.intercepted(event, namespace):
            return self.on_session_result(data)
        return super().emit(event, data, namespace, room, skip_sid, callback, to, **kw)


class _RedisHook(socketio.RedisManager):
    def __init__(self, on_session_result, intercepted, url, channel):
        super().__init__(url, channel=channel)
        self.on_session_result = on_session_result
        self.intercepted = intercepted

    def _handle_emit(self, message):
        if self.intercepted(message.get("event"), message.get("namespace")):
            data = message["data"]  # the pub/sub manager wraps the payload in a list
            return self.on_session_result(data[0] if isinstance(data, list) else data)
        return super()._handle_emit(message)


def encode_event(namespace, event, data):
    """One event encoded once, ready for `send_encoded` to any number of sockets."""
    packet = sio_packet.Packet(sio_packet.EVENT, namespace=namespace, data=[event, data])
    return [eio_packet.Packet(eio_packet.MESSAGE, packet.encode())]


# Below this many packets a queue's bytes are not counted: a reading socket's queue is
# short, and counting walks the queue.
BYTES_COUNTED_FROM = 64


class Outlet:
    """One connected socket's send queue, found once and kept (delivery keeps one per
    subscription) rather than looked up through the Socket.IO and Engine.IO servers for
    every packet to every subscriber."""

    __slots__ = ("sid", "namespace", "eio_sid", "_server", "_socket")

    def __init__(self, server, sid, namespace, eio_sid):
        self.sid, self.namespace, self.eio_sid = sid, namespace, eio_sid
        self._server = server
        # None for a socket with no Engine.IO transport of its own (Flask-SocketIO's test client).
        self._socket = server.eio.sockets.get(eio_sid)

    @classmethod
    def of(cls, sid, namespace):
        """The outlet of a connected socket; None if it is not connected."""
        server = flask_socketio.server
        eio_sid = server.manager.eio_sid_from_sid(sid, namespace)
        return None if eio_sid is None else cls(server, sid, namespace, eio_sid)

    @property
    def gone(self):
        if self._socket is not None:
            return self._socket.closed
        return self._server.manager.eio_sid_from_sid(self.sid, self.namespace) is None

    def waiting(self):
        """(packets, bytes) waiting in the send queue; None once the socket is gone.

        Bytes are counted only from BYTES_COUNTED_FROM packets on (0 below), by walking
        the queue's deque. A socket without an Engine.IO transport has nothing waiting.
        """
        if self.gone:
            return None
        if self._socket is None:
            return 0, 0
        queue = self._socket.queue
        packets = queue.qsize()
        if packets < BYTES_COUNTED_FROM:
            return packets, 0
        return packets, sum(len(packet.data or b"") for packet in list(queue.queue))

    def send(self, packets):
        """Queue encoded packets; False if the socket is gone."""
        if self.gone:
            return False
        if self._socket is None:
            for packet in packets:
                self._server._send_eio_packet(self.eio_sid, packet)
            return True
        for packet in packets:
            self._socket.send(packet)
        return True
