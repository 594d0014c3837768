"""Answers and tool calls of 20 MiB through the whole system: agent, server, browser.

The text arrives whole, split across chunks the server accepts; a structured
event too large for one message (the result repeating the answer, a Write
call's input) is cut, and the cut says so.
"""

import os

from agent_client.standin import big_text
from protocol.schemas import MAX_CHUNK_CHARS
from tests.harness import wait_until

SIZE = 20 * 1024 * 1024
SLOW_S = 300  # about 10 s here; leave room for a busy machine
CUT = "more characters not shown]"


def test_twenty_mebibyte_answer_reaches_the_browser_whole(live):
    seed, (browser,) = live.ready()
    reply = browser.run(seed.project_id, f"big: {SIZE}")
    final = browser.wait_final(reply["commandId"], timeout=SLOW_S)
    assert final["status"] == "complete", final
    assert browser.text_of(reply["commandId"]) == big_text(SIZE)
    results = browser.session_results(reply["sessionId"])
    assert len(results) > SIZE // MAX_CHUNK_CHARS
    assert all(len(r["response"]) <= MAX_CHUNK_CHARS for r in results)
    (result,) = [r["event"] for r in results if r.get("event", {}).get("type") == "result"]
    assert result["is_error"] is False and result["result"].endswith(CUT)


def test_twenty_mebibyte_write_is_asked_for_and_written(live):
    seed, (browser,) = live.ready()
    reply = browser.run(seed.project_id, f"bigwrite: big.txt {SIZE}")
    (ask,) = wait_until(lambda: browser.permissions, SLOW_S, "the permission request")
    assert ask["toolName"] == "Write" and ask["input"]["content"].endswith(CUT)
    answer = {"sessionId": reply["sessionId"], "requestId": ask["requestId"], "decision": "allow"}
    assert browser.call("permission_response", answer)["ok"]
    final = browser.wait_final(reply["commandId"], timeout=SLOW_S)
    assert final["status"] == "complete", final
    with open(os.path.join(seed.project_path, "big.txt")) as file:
        assert file.read() == big_text(SIZE)
    results = browser.session_results(reply["sessionId"])
    (call,) = [r["event"] for r in results if r.get("event", {}).get("type") == "tool_use"]
    assert call["input"]["content"].startswith(big_text(1000)) and call["input"]["content"].endswith(CUT)
