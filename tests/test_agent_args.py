"""python -m agent_client: the options that bound the agent's Claude Code processes."""

import pytest

from agent_client.__main__ import parse_args

BASE = ["--server", "http://127.0.0.1:5000", "--token", "t"]


def test_defaults_keep_four_warm_sessions_and_read_messages_of_64_mib():
    args = parse_args(BASE)
    assert args.max_warm_sessions == 4 and args.max_message_mb == 64


def test_bounds_can_be_set():
    args = parse_args([*BASE, "--max-warm-sessions", "1", "--max-message-mb", "256"])
    assert args.max_warm_sessions == 1 and args.max_message_mb == 256


@pytest.mark.parametrize("option", ["--max-warm-sessions", "--max-message-mb"])
@pytest.mark.parametrize("value", ["0", "-3", "many"])
def test_a_bound_below_one_is_refused(option, value, capsys):
    with pytest.raises(SystemExit):
        parse_args([*BASE, option, value])
    assert option in capsys.readouterr().err
