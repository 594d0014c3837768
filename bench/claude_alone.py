"""Claude Code alone, in a process of its own: a warm client and the time each text delta reaches it.

    python bench/claude_alone.py --standin URL --workdir DIR [--via sdk|runner]

The baseline of bench/realpath.py. Claude Code (the CLI bundled with
claude-agent-sdk) talks to the stand-in model at URL, with the options the agent's
runner gives it (partial messages, the claude_code system prompt, the agent's
message size limit, a can_use_tool callback), and its environment from
bench/followup.py. Its first turn warms the client and prints `READY`; then every
`RUN {"prompt": ...}` line on stdin is a follow-up turn on the same live client,
answered with `RESULT {json}`: when the prompt was sent, when the first and the last
text delta arrived (CLOCK_MONOTONIC ns, system-wide), how many, and for the stand-in's
`paced:` deltas (stamped `@<epoch us>` when written) the latency of each, p50/p90/p99.

--via sdk (default) iterates ClaudeSDKClient.receive_response() directly: "the SDK
client receiving it". --via runner goes through the agent's SessionManager with a
sink that records the same, which adds the runner's own per-message work.
"""

import argparse
import asyncio
import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common, followup  # noqa: E402

EPOCH_OFFSET_NS = time.time_ns() - time.monotonic_ns()
WARM_PROMPT = "say: warming the session up"


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--standin", required=True, help="the stand-in model's base URL")
    parser.add_argument("--workdir", required=True)
    parser.add_argument("--via", choices=("sdk", "runner"), default="sdk")
    return parser.parse_args(argv)


def say(tag, data=None):
    print(tag + ("" if data is None else " " + json.dumps(data)), flush=True)


class Deltas:
    """Receipt times of one turn's text deltas, and the latency of the stamped ones."""

    def __init__(self):
        self.times = []
        self.latencies = []

    def add(self, now_ns, text):
        self.times.append(now_ns)
        head, at, stamp = text.rpartition("@")
        if at and stamp.isdigit():
            self.latencies.append(((now_ns + EPOCH_OFFSET_NS) / 1000 - int(stamp)) / 1000)

    def summary(self, t_query, t_result):
        out = {
            "t_query": t_query,
            "t_result": t_result,
            "t_first": self.times[0] if self.times else None,
            "t_last": self.times[-1] if self.times else None,
            "deltas": len(self.times),
        }
        if self.latencies:
            out["latency_ms"] = latency_summary(self.latencies)
        return out


def latency_summary(values):
    return {
        "n": len(values),
        "p50": common.percentile(values, 50),
        "p90": common.percentile(values, 90),
        "p99": common.percentile(values, 99),
        "max": max(values),
    }


# -- through the SDK client directly ------------------------------------------------------------


class SdkClaude:
    """One live ClaudeSDKClient, as the runner configures it."""

    def __init__(self, standin_url, workdir):
        self.workdir = workdir
        self.env = followup.claude_env(standin_url, os.path.join(workdir, "claude-config"))
        self.client = None

    async def start(self):
        from claude_agent_sdk import ClaudeAgentOptions, ClaudeSDKClient, PermissionResultAllow

        from agent_client.claude_runner import DEFAULT_MAX_MESSAGE_BYTES

        async def allow(tool_name, tool_input, context):
            return PermissionResultAllow()

        options = ClaudeAgentOptions(
            cwd=self.workdir,
            permission_mode="default",
            env=self.env,
            max_buffer_size=DEFAULT_MAX_MESSAGE_BYTES,
            system_prompt={"type": "preset", "preset": "claude_code"},
            include_partial_messages=True,
            can_use_tool=allow,
        )
        self.client = ClaudeSDKClient(options)
        await self.client.connect()

    async def turn(self, prompt):
        from claude_agent_sdk import ResultMessage, StreamEvent

        deltas = Deltas()
        t_query = time.monotonic_ns()
        await self.client.query(prompt)
        async for message in self.client.receive_response():
            if isinstance(message, StreamEvent):
                event = message.event
                if event.get("type") == "content_block_delta" and not message.parent_tool_use_id:
                    delta = event.get("delta") or {}
                    if delta.get("type") == "text_delta":
                        deltas.add(time.monotonic_ns(), delta.get("text") or "")
            elif isinstance(message, ResultMessage):
                if message.is_error:
                    raise RuntimeError(f"Claude Code failed: {message.result}")
                break
        return deltas.summary(t_query, time.monotonic_ns())

    async def close(self):
        if self.client is not None:
            await self.client.disconnect()


# -- through the agent's runner -----------------------------------------------------------------


class RecordingSink(followup.TimingSink):
    """followup's TimingSink, also keeping the stamped deltas' latencies."""

    def __init__(self):
        super().__init__()
        self.turn = Deltas()

    def text(self, session_id, command_id, text):
        self.turn.add(time.monotonic_ns(), text)


class RunnerClaude:
    """The agent's SessionManager, one session kept warm."""

    def __init__(self, standin_url, workdir):
        from agent_client.claude_runner import SessionManager

        self.workdir = workdir
        self.sink = RecordingSink()
        env = followup.claude_env(standin_url, os.path.join(workdir, "claude-config"))
        self.manager = SessionManager(self.sink, env=env, idle_timeout=3600)
        self._n = 0

    async def start(self):
        pass  # the first turn starts Claude Code

    async def turn(self, prompt):
        from agent_client.claude_runner import RunRequest

        self._n += 1
        command_id = f"alone-{self._n}"
        self.sink.turn = Deltas()
        t_query = time.monotonic_ns()
        self.manager.run(RunRequest("alone", command_id, prompt, self.workdir))
        _, error = await asyncio.to_thread(self.sink.wait, command_id)
        if error:
            raise RuntimeError(f"Claude Code failed: {error}")
        return self.sink.turn.summary(t_query, time.monotonic_ns())

    async def close(self):
        await asyncio.to_thread(self.manager.close)


async def serve(options):
    os.makedirs(options.workdir, exist_ok=True)
    kind = SdkClaude if options.via == "sdk" else RunnerClaude
    claude = kind(options.standin, options.workdir)
    lines = asyncio.Queue()
    loop = asyncio.get_running_loop()

    def read_stdin():
        for line in sys.stdin:
            loop.call_soon_threadsafe(lines.put_nowait, line.strip())
        loop.call_soon_threadsafe(lines.put_nowait, "EXIT")

    threading.Thread(target=read_stdin, daemon=True).start()
    try:
        await claude.start()
        warm = await claude.turn(WARM_PROMPT)
        say("READY", {"warm_turn_ms": (warm["t_result"] - warm["t_query"]) / 1e6, "via": options.via})
        while (line := await lines.get()) != "EXIT":
            if line.startswith("RUN "):
                say("RESULT", await claude.turn(json.loads(line[4:])["prompt"]))
    finally:
        await claude.close()


def main(argv=None):
    asyncio.run(serve(parse_args(argv)))


if __name__ == "__main__":
    main()
