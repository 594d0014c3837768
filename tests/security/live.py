"""Real network clients for the security tests: a scripted agent and a raw Socket.IO socket.

Both speak the wire protocol to a real server process (tests/harness.ServerProcess):
the scripted agent is a python-socketio client holding an agent token, so a test
decides exactly what an agent sends (forged ids, floods of chunks); the raw socket
is a bare WebSocket that a test drives packet by packet, or stops reading.
"""

import json
import queue
import socket
import threading

import socketio
import websocket

from protocol import PROTOCOL_VERSION


class ScriptedAgent:
    """An agent whose every message is chosen by the test."""

    def __init__(self, url, token, name="scripted"):
        self.sio = socketio.Client(reconnection=False)
        self.commands = queue.Queue()
        self.sio.on("agent_command", self._on_command, namespace="/agent")
        auth = {"token": token, "protocolVersion": PROTOCOL_VERSION, "name": name}
        self.sio.connect(url, namespaces=["/agent"], auth=auth, transports=["websocket"], wait_timeout=10)

    def _on_command(self, payload):
        self.commands.put(payload)
        return {"ok": True}

    def next_command(self, timeout=10):
        return self.commands.get(timeout=timeout)

    def call(self, event, **fields):
        return self.sio.call(event, {"type": event, **fields}, namespace="/agent", timeout=15)

    def stream(self, command, count, size=100, complete=True, window=16):
        """Send `count` chunks of `size` characters for `command`, up to `window` unacknowledged.

        The server stores a command's chunks in the order they arrive on the socket.
        """
        text = "x" * size
        slots = threading.Semaphore(window)
        refused = []

        def acknowledged(reply=None):
            if not (isinstance(reply, dict) and reply.get("ok")):
                refused.append(reply)
            slots.release()

        for seq in range(1, count + 1):
            slots.acquire()
            payload = {
                "type": "command_response",
                "sessionId": command["sessionId"],
                "commandId": command["commandId"],
                "seq": seq,
                "data": text,
                "isComplete": complete and seq == count,
            }
            self.sio.emit("command_response", payload, namespace="/agent", callback=acknowledged)
        for _ in range(window):
            assert slots.acquire(timeout=30), "acknowledgements stopped coming"
        assert refused == [], refused[:3]

    def close(self):
        self.sio.disconnect()


class RawSocket:
    """A WebSocket speaking Engine.IO 4 / Socket.IO 5 by hand, carrying a login cookie."""

    def __init__(self, url, http=None, receive_buffer=None, origin=None):
        cookie = "; ".join(f"{c.name}={c.value}" for c in http.cookies) if http else None
        options = [(socket.SOL_SOCKET, socket.SO_RCVBUF, receive_buffer)] if receive_buffer else ()
        self.ws = websocket.create_connection(
            url.replace("http://", "ws://") + "/socket.io/?EIO=4&transport=websocket",
            cookie=cookie,
            origin=origin or url,
            sockopt=options,
            timeout=10,
        )
        opened = self.ws.recv()
        assert opened.startswith("0{"), opened
        self.ack_id = 0

    def join(self, namespace):
        self.ws.send(f"40{namespace},")
        while True:
            packet = self.recv()
            if packet.startswith(f"40{namespace},"):
                return json.loads(packet[len(namespace) + 3 :])
            assert not packet.startswith(f"44{namespace},"), packet  # CONNECT_ERROR

    def send_event(self, namespace, event, payload):
        """Emit with an ack id; returns the id."""
        self.ack_id += 1
        self.ws.send(f"42{namespace},{self.ack_id}" + json.dumps([event, payload]))
        return self.ack_id

    def wait_ack(self, namespace, ack_id):
        prefix = f"43{namespace},{ack_id}"
        while True:
            packet = self.recv()
            if packet.startswith(prefix):
                return json.loads(packet[len(prefix) :])[0]

    def call(self, namespace, event, payload):
        return self.wait_ack(namespace, self.send_event(namespace, event, payload))

    def recv(self):
        """The next Engine.IO packet ("42/web,[...]" is a Socket.IO event); pings are answered."""
        while True:
            packet = self.ws.recv()
            if packet == "2":
                self.ws.send("3")
                continue
            return packet

    def close(self):
        self.ws.close()


def rss_bytes(pid):
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")
