"""The stand-in model (agent_client.standin) in a process of its own, saying when it writes each answer.

    python bench/standin_timed.py

Prints `LISTENING {"url": ...}`, then for every answer with text `STREAM {"t0", "t1",
"deltas"}`: the CLOCK_MONOTONIC time (ns, system-wide) at which the model began the
text block and at which it had written the last delta, and how many deltas it wrote.
That is the common start of "Claude Code alone" and of the real path. Runs until
stdin closes or EXIT arrives. In a process of its own so that neither Claude Code
alone's SDK client nor the orchestrator shares its interpreter lock.
"""

import json
import os
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from agent_client import standin  # noqa: E402

_lock = threading.Lock()


def _timed(original):
    def stream_text(out, index, pieces, stopping):
        t0 = time.monotonic_ns()
        count = original(out, index, pieces, stopping)
        t1 = time.monotonic_ns()
        with _lock:
            print("STREAM " + json.dumps({"t0": t0, "t1": t1, "deltas": count}), flush=True)
        return count

    return stream_text


def main():
    # stream_reply looks _stream_text up at call time: wrapping the module's name times every answer.
    standin._stream_text = _timed(standin._stream_text)
    model = standin.StandInModel()
    url = model.start()
    print("LISTENING " + json.dumps({"url": url}), flush=True)
    try:
        for line in sys.stdin:
            if line.strip() == "EXIT":
                break
    finally:
        model.stop()


if __name__ == "__main__":
    main()
