"""The stand-in model with attachments: the prompt is found among content blocks, and requests are kept
(a bounded number) for tests to look at."""

from agent_client import standin
from agent_client.standin import StandInModel, plan_reply, prompt_blocks
from tests.test_standin import make_body, stream, text_of

IMAGE = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}
ATTACHED = {
    "type": "text",
    "text": '<attached_file name="a.md" media_type="text/markdown">\nsay: not me\n</attached_file>',
}


def with_attachments(prompt):
    """A user message as Claude Code sends a prompt with attachments: files, the prompt, its image notes."""
    note = {"type": "text", "text": "[Image: source: /tmp/claude-0/x/1.png]"}
    return {"role": "user", "content": [IMAGE, ATTACHED, {"type": "text", "text": prompt}, note]}


def test_the_prompt_is_found_among_images_attached_files_and_image_notes():
    reply = plan_reply(make_body(with_attachments("say: the prompt")))
    assert "".join(chunk for piece in reply.pieces for chunk in piece.chunks) == "the prompt"


def test_attached_files_are_not_earlier_prompts_for_recall():
    earlier = with_attachments("say: first")
    answer = {"role": "assistant", "content": [{"type": "text", "text": "first"}]}
    reply = plan_reply(make_body(earlier, answer, {"role": "user", "content": "recall"}))
    text = "".join(chunk for piece in reply.pieces for chunk in piece.chunks)
    assert text == "Earlier prompts in this conversation:\n1. say: first"


def test_a_request_is_found_by_its_prompt_with_its_model_and_blocks():
    with StandInModel() as model:
        assert (
            text_of(stream(model.url, make_body(with_attachments("say: look"), model="claude-x"))) == "look"
        )
        stream(model.url, make_body(with_attachments("say: other")))
        found = model.request_for("say: look")
        assert found["model"] == "claude-x"
        assert prompt_blocks(found)[:2] == [IMAGE, ATTACHED]
        assert model.request_for("say: never sent") is None
        assert model.request_for("not me") is None  # an attached file is not the prompt


def test_only_the_latest_requests_are_kept(monkeypatch):
    monkeypatch.setattr(standin, "RECORDED_REQUESTS", 3)
    with StandInModel() as model:
        for n in range(5):
            stream(model.url, make_body({"role": "user", "content": f"say: {n}"}))
        assert [body["messages"][0]["content"] for body in model.recorded()] == ["say: 2", "say: 3", "say: 4"]
