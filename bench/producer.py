"""Load-client process: the one producer, in place of an agent running Claude Code.

    python bench/producer.py --port P --target tether|bare --mode MODE [...]

Modes:
  burst    --count messages of --size characters, as fast as the server takes them.
           Tether: command_response chunks with up to --window unacknowledged at once
           (1 = the real agent's stop-and-wait); bare: `chunk` events, no acks.
  paced    one message every 1/--rate s for --duration s, each text carrying its
           emit time as `|<monotonic ns>|`. Tether: stop-and-wait like the real
           outbox: what is produced while a chunk waits for its ack rides in the
           next chunk, sent as soon as the ack arrives.
  outbox   Tether only: the real agent (agent_client.client.AgentClient: its
           python-socketio client, its Outbox with the 5 ms coalescing window and
           its state files) with Claude Code replaced by a synthetic runner that
           feeds --deltas words (`w0`, ` w1`, ...) as fast as it can, or on the
           schedule in --schedule (a JSON list of offsets in seconds, e.g. recorded
           from Claude Code), or at --rate deltas/s with --stamp (then each delta
           carries its time and --duration bounds the run).
  fanout   bare only: like outbox mode, the --deltas words at the same pace, but one
           `chunk` event per delta: what a relay without coalescing sends.

Prints `READY` when connected, (Tether) `COMMAND {sessionId, commandId}` when the
server hands it a command, starts on `GO` from stdin and prints `RESULT {json}`.
"""

import argparse
import asyncio
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.sio_lite import SioClient, split_ack_id  # noqa: E402


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--target", choices=("tether", "bare"), required=True)
    parser.add_argument("--mode", choices=("burst", "paced", "outbox", "fanout"), default="burst")
    parser.add_argument("--token", help="Tether agent token")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--size", type=int, default=100, help="characters of text per message")
    parser.add_argument("--window", type=int, default=64, help="burst: unacknowledged chunks at most")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--duration", type=float, default=5.0)
    parser.add_argument("--deltas", type=int, default=20_000)
    parser.add_argument("--schedule", help="JSON file: delta offsets in seconds")
    parser.add_argument("--stamp", action="store_true", help="outbox: stamp each delta with its time")
    parser.add_argument("--workdir", help="outbox: where the agent keeps its state")
    return parser.parse_args(argv)


def say(tag, data=None):
    print(tag + ("" if data is None else " " + json.dumps(data)), flush=True)


def words(n):
    return ["w0"] + [f" w{i}" for i in range(1, n)]


def load_schedule(options):
    if options.schedule:
        with open(options.schedule) as file:
            offsets = json.load(file)
        if len(offsets) != options.deltas:
            raise SystemExit(f"schedule has {len(offsets)} offsets, not {options.deltas}")
        return offsets
    return None


def wait_go():
    """Block until the orchestrator says GO; False if stdin closed first."""
    return any(line.strip() == "GO" for line in sys.stdin)


# -- raw producer (sio_lite) -------------------------------------------------------------------


class RawProducer:
    def __init__(self, options):
        self.options = options
        self.tether = options.target == "tether"
        self.command = None
        self.got_command = None
        self.acked = 0
        self.errors = []
        self.sent = 0
        if self.tether:
            auth = {"token": options.token, "protocolVersion": 1, "name": "bench-producer"}
            self.client = SioClient(common.HOST, options.port, "/agent", auth=auth, on_event=self.on_event)
        else:
            self.client = SioClient(common.HOST, options.port, "/", auth={"role": "producer"})

    def on_event(self, client, rest):
        ack_id, body = split_ack_id(rest)
        event, data = json.loads(body)[:2]
        if event == "agent_command":
            client.ack(ack_id, {"ok": True})
            self.command = data
            if not self.got_command.done():
                self.got_command.set_result(data)
        elif ack_id is not None:
            client.ack(ack_id, {"ok": True})

    async def run(self):
        loop = asyncio.get_running_loop()
        self.got_command = loop.create_future()
        await self.client.connect(15)
        say("READY")
        if self.tether:
            command = await asyncio.wait_for(self.got_command, 120)
            say("COMMAND", {"sessionId": command["sessionId"], "commandId": command["commandId"]})
        if not await loop.run_in_executor(None, wait_go):
            return
        cpu = common.own_cpu_seconds()
        t0 = time.monotonic_ns()
        if self.options.mode == "burst":
            await self.burst()
        else:
            await self.paced()
        say(
            "RESULT",
            {
                "t0": t0,
                "t_sent": time.monotonic_ns(),
                "sent": self.sent,
                "acked": self.acked,
                "errors": len(self.errors),
                "first_error": self.errors[0] if self.errors else None,
                "cpu_seconds": common.own_cpu_seconds() - cpu,
            },
        )
        await asyncio.sleep(0.5)
        self.client.close()

    def chunk(self, seq, data, last):
        if self.tether:
            return {
                "type": "command_response",
                "sessionId": self.command["sessionId"],
                "commandId": self.command["commandId"],
                "seq": seq,
                "data": data,
                "isComplete": last,
            }
        body = {"i": seq, "d": data}
        if last:
            body["end"] = 1
        return body

    def _send(self, seq, data, last, on_ack=None):
        event = "command_response" if self.tether else "chunk"
        self.client.emit(event, self.chunk(seq, data, last), callback=on_ack if self.tether else None)
        self.sent += 1

    def _acked(self, reply):
        self.acked += 1
        if not (isinstance(reply, dict) and reply.get("ok")):
            self.errors.append(reply)

    async def burst(self):
        options = self.options
        filler = "x" * options.size
        window = asyncio.Semaphore(options.window)
        done = asyncio.get_running_loop().create_future()

        def on_ack(reply):
            self._acked(reply)
            window.release()
            if self.acked == options.count and not done.done():
                done.set_result(True)

        for seq in range(1, options.count + 1):
            if self.tether:
                await window.acquire()
            self._send(seq, filler, seq == options.count, on_ack)
            await self.client.ws.drain()
            if seq % 64 == 0:
                await asyncio.sleep(0)  # let acks in
        if self.tether:
            await asyncio.wait_for(done, 300)

    async def paced(self):
        options = self.options
        period = 1.0 / options.rate
        total = int(options.duration * options.rate)
        pending = []  # stamps produced while a chunk was in flight
        state = {"in_flight": False, "seq": 0}
        done = asyncio.get_running_loop().create_future()

        def pad(text):
            return text + "x" * max(0, options.size - len(text))

        def send(last=False):
            state["seq"] += 1
            state["in_flight"] = True
            self._send(state["seq"], pad("".join(pending)), last, on_ack)
            pending.clear()
            if last and not self.tether and not done.done():
                done.set_result(True)

        def on_ack(reply):
            self._acked(reply)
            state["in_flight"] = False
            if state.get("finished"):
                if not done.done():
                    done.set_result(True)
            elif pending:
                send()

        start = time.monotonic()
        for i in range(total):
            delay = start + i * period - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            pending.append(f"|{time.monotonic_ns()}|")
            last = i == total - 1
            if not self.tether:
                send(last)
            elif not state["in_flight"]:
                if last:
                    state["finished"] = True
                send(last)
            elif last:
                # Wait for the chunk in flight, then send the rest as the final chunk.
                while state["in_flight"]:
                    await asyncio.sleep(0.0005)
                state["finished"] = True
                send(True)
        await asyncio.wait_for(done, 60)


# -- the real agent with a synthetic runner ------------------------------------------------------


class SyntheticRunner:
    """Stands in for agent_client.claude_runner.SessionManager: feeds words to the sink."""

    def __init__(self, sink, options):
        self.sink = sink
        self.options = options
        self.go = threading.Event()
        self.result = None
        self.finished = threading.Event()
        self._running = []

    def run(self, request):
        self._running.append(request.command_id)
        say("COMMAND", {"sessionId": request.session_id, "commandId": request.command_id})
        threading.Thread(target=self._feed, args=(request,), daemon=True).start()

    def _feed(self, request):
        self.go.wait()
        options = self.options
        sid, cid = request.session_id, request.command_id
        schedule = load_schedule(options)
        cpu = common.own_cpu_seconds()
        t0 = time.monotonic_ns()
        start = time.monotonic()
        if options.stamp:
            count = self._feed_stamped(sid, cid, start)
        else:
            count = self._feed_words(sid, cid, schedule, start)
        t_fed = time.monotonic_ns()
        self.sink.finish(sid, cid, None)
        self._running.remove(cid)
        self.result = {"t0": t0, "t_fed": t_fed, "deltas": count, "cpu_seconds_at_fed": None}
        self.result["cpu_seconds_at_fed"] = common.own_cpu_seconds() - cpu
        self.finished.set()

    def _feed_words(self, sid, cid, schedule, start):
        pieces = words(self.options.deltas)
        if schedule is None:
            for piece in pieces:
                self.sink.text(sid, cid, piece)
            return len(pieces)
        i = 0
        n = len(pieces)
        while i < n:
            now = time.monotonic() - start
            while i < n and schedule[i] <= now:
                self.sink.text(sid, cid, pieces[i])
                i += 1
            if i < n:
                time.sleep(max(0.0, min(0.001, schedule[i] - now)))
        return n

    def _feed_stamped(self, sid, cid, start):
        period = 1.0 / self.options.rate
        total = int(self.options.duration * self.options.rate)
        for i in range(total):
            delay = start + i * period - time.monotonic()
            if delay > 0:
                time.sleep(delay)
            self.sink.text(sid, cid, f"|{time.monotonic_ns()}|")
        return total

    def cancel(self, session_id):
        return False

    def answer_permission(self, session_id, request_id, decision, message=None):
        return False

    def running(self):
        return list(self._running)

    def close(self):
        self.go.set()


def run_outbox(options):
    from agent_client.client import AgentClient

    holder = {}

    def factory(sink):
        holder["runner"] = SyntheticRunner(sink, options)
        return holder["runner"]

    workdir = options.workdir or common.Workdir().path
    agent = AgentClient(
        f"http://{common.HOST}:{options.port}",
        options.token,
        name="bench-agent",
        roots=[os.path.join(workdir, "project")],
        runner_factory=factory,
        state_dir=os.path.join(workdir, f"agent-state-{os.getpid()}"),
    )
    threading.Thread(target=agent.run, daemon=True).start()
    deadline = time.monotonic() + 30
    while "/agent" not in agent.sio.namespaces:
        if time.monotonic() > deadline:
            raise SystemExit("the agent could not connect")
        time.sleep(0.02)
    say("READY")
    runner = holder["runner"]
    if not wait_go():
        return
    runner.go.set()
    runner.finished.wait(600)
    # Wait until the outbox has every chunk acknowledged, like the real agent would.
    deadline = time.monotonic() + 300
    while not agent.outbox.idle() and time.monotonic() < deadline:
        time.sleep(0.002)
    runner.result["t_acked"] = time.monotonic_ns()
    say("RESULT", runner.result)
    agent.stop()


def run_bare_fanout(options):
    """One chunk event per delta, at the same pace: a relay with no coalescing."""

    async def go():
        client = SioClient(common.HOST, options.port, "/", auth={"role": "producer"})
        await client.connect(15)
        say("READY")
        loop = asyncio.get_running_loop()
        if not await loop.run_in_executor(None, wait_go):
            return
        schedule = load_schedule(options)
        pieces = words(options.deltas)
        n = len(pieces)
        cpu = common.own_cpu_seconds()
        t0 = time.monotonic_ns()
        start = time.monotonic()
        for i, piece in enumerate(pieces):
            if schedule is not None:
                delay = schedule[i] - (time.monotonic() - start)
                if delay > 0.0005:
                    await asyncio.sleep(delay)
            body = {"i": i, "d": piece}
            if i == n - 1:
                body["end"] = 1
            client.emit("chunk", body)
            await client.ws.drain()
            if i % 256 == 0:
                await asyncio.sleep(0)
        say(
            "RESULT",
            {
                "t0": t0,
                "t_fed": time.monotonic_ns(),
                "deltas": n,
                "cpu_seconds": common.own_cpu_seconds() - cpu,
            },
        )
        await asyncio.sleep(0.5)
        client.close()

    asyncio.run(go())


def main():
    options = parse_args()
    if options.mode == "outbox":
        run_outbox(options)
    elif options.mode == "fanout":
        run_bare_fanout(options)
    else:
        asyncio.run(RawProducer(options).run())


if __name__ == "__main__":
    main()
