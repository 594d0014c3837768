"""The demo tour through the whole system: an agent started with `--demo` (as `make run` starts it
without Anthropic credentials) runs the real Claude Code against its own scripted model, and an
ordinary first prompt writes a file after a permission prompt, runs it with Bash and shows the output."""

import os

from agent_client.standin import TOUR_FILE, TOUR_GREETING, TOUR_PROGRAM
from tests.harness import events_of, wait_until

PROMPT = "write me a hello world script"
WAIT_S = 120  # Claude Code starts, asks, runs python3: seconds each on a loaded machine


def answer_permissions(browser, reply, decide):
    """Answer each permission request of the command as it comes, until the command ends.

    `decide(request)` gives "allow" or "deny". Returns the final result and the requests seen.
    """
    answered = []

    def pending():
        with browser.cond:
            asked = [p for p in browser.permissions if p["commandId"] == reply["commandId"]]
        return asked[len(answered) :]

    def step():
        for request in pending():
            answer = {"sessionId": reply["sessionId"], "requestId": request["requestId"]}
            answer["decision"] = decide(request)
            assert browser.call("permission_response", answer)["ok"]
            answered.append(request)
        return finished()

    def finished():
        with browser.cond:
            return any(
                r["commandId"] == reply["commandId"] and r["status"] != "streaming" for r in browser.results
            )

    wait_until(step, WAIT_S, "the end of the tour")
    return browser.wait_final(reply["commandId"], WAIT_S), answered


def start_demo(live):
    seed, (browser,) = live.ready(extra_args=["--demo"])
    return seed, browser, browser.run(seed.project_id, PROMPT)


def test_the_tour_asks_to_write_a_file_runs_it_and_shows_its_output(live):
    seed, browser, reply = start_demo(live)
    final, asked = answer_permissions(browser, reply, lambda request: "allow")

    assert final["status"] == "complete", final
    # Both steps ask first, as the tour's text says.
    assert [request["toolName"] for request in asked] == ["Write", "Bash"]
    write = asked[0]
    assert write["input"]["file_path"] == os.path.join(seed.project_path, TOUR_FILE)
    with open(os.path.join(seed.project_path, TOUR_FILE)) as file:
        assert file.read() == TOUR_PROGRAM
    calls = [event["name"] for event in events_of(browser, reply["commandId"], "tool_use")]
    assert calls == ["Write", "Bash"]
    bash_result = events_of(browser, reply["commandId"], "tool_result")[-1]
    assert TOUR_GREETING in str(bash_result["content"]) and not bash_result["is_error"]
    text = browser.text_of(reply["commandId"])
    assert text.startswith("Hi! This is **Tether's demo model**") and "ANTHROPIC_API_KEY" in text
    assert f"printed:\n\n```text\n{TOUR_GREETING}\n```" in text
    assert "That was the tour" in text


def test_a_denied_write_ends_the_tour_without_running_anything(live):
    seed, browser, reply = start_demo(live)
    final, asked = answer_permissions(browser, reply, lambda request: "deny")

    assert final["status"] == "complete", final
    assert [request["toolName"] for request in asked] == ["Write"]
    assert not os.path.exists(os.path.join(seed.project_path, TOUR_FILE))
    calls = [event["name"] for event in events_of(browser, reply["commandId"], "tool_use")]
    assert calls == ["Write"]
    text = browser.text_of(reply["commandId"])
    assert "Tether's demo model" in text and f"did not write `{TOUR_FILE}`" in text
    assert "skip the Bash step" in text and "printed:" not in text


def test_a_second_ordinary_prompt_in_the_session_does_not_replay_the_tour(live):
    seed, browser, reply = start_demo(live)
    answer_permissions(browser, reply, lambda request: "deny")

    again = browser.run(seed.project_id, "what else can you do?", session_id=reply["sessionId"])
    assert browser.wait_final(again["commandId"], WAIT_S)["status"] == "complete"
    assert not events_of(browser, again["commandId"], "tool_use")
    text = browser.text_of(again["commandId"])
    assert "Tether's demo model" in text and "> what else can you do?" in text
