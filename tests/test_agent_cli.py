"""The tether-agent command: its token kept from pairing, and `install-service` (the unit files'
content; no service manager runs here)."""

import os
import plistlib
import shlex
import stat
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from agent_client import credentials, service
from agent_client.__main__ import main, parse_args, service_argv
from agent_client.credentials import CredentialsError, load_token, save_token

SERVER = "https://tether.example:8443"


@pytest.fixture
def home(tmp_path, monkeypatch):
    """A home directory of its own, with no XDG overrides."""
    path = tmp_path / "home"
    path.mkdir()
    monkeypatch.setenv("HOME", str(path))
    for name in ("XDG_CONFIG_HOME", "XDG_STATE_HOME", "TETHER_AGENT_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    return path


def paired_state_dir(home, name=None):
    """The default state directory (of `name`, or of this host) with a token for SERVER."""
    import socket

    state_dir = home / ".local" / "state" / "tether-agent" / (name or socket.gethostname())
    save_token(str(state_dir), SERVER, "tether_secret-token", "laptop")
    return state_dir


def exit_of(capsys, argv):
    with pytest.raises(SystemExit) as done:
        main(argv)
    return done.value.code, capsys.readouterr()


# -- the token, kept ------------------------------------------------------------------------------


def test_a_paired_token_is_kept_readable_by_its_user_only(tmp_path):
    state_dir = tmp_path / "state"
    path = save_token(str(state_dir), SERVER + "/", "tether_abc", "laptop")

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(state_dir).st_mode) == 0o700
    assert load_token(str(state_dir), SERVER) == "tether_abc"
    assert os.listdir(state_dir) == ["token.json"]  # no temporary file left behind

    save_token(str(state_dir), SERVER, "tether_def")  # pairing again replaces it
    assert load_token(str(state_dir), SERVER) == "tether_def"
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


def test_a_kept_token_is_never_sent_to_another_server(tmp_path):
    save_token(str(tmp_path), SERVER, "tether_abc")
    with pytest.raises(CredentialsError, match="holds the token of https://tether.example:8443"):
        load_token(str(tmp_path), "https://elsewhere.example")
    assert load_token(str(tmp_path / "empty"), SERVER) is None


def test_pair_and_token_exclude_each_other_and_the_environment_token_yields_to_a_code(monkeypatch):
    with pytest.raises(SystemExit):
        parse_args(["--server", SERVER, "--token", "t", "--pair", "ABCDE-FGHJK"])
    monkeypatch.setenv("TETHER_AGENT_TOKEN", "from-env")
    assert parse_args(["--server", SERVER]).token == "from-env"
    assert parse_args(["--server", SERVER, "--pair", "ABCDE-FGHJK"]).token is None


def test_without_token_code_or_kept_token_the_agent_says_how_to_pair(home, capsys):
    code, output = exit_of(capsys, ["--server", SERVER, "--root", str(home)])
    assert code == service.EXIT_REFUSED
    assert "error: no token for https://tether.example:8443" in output.err
    assert "--pair CODE" in output.err


def test_an_unreachable_server_fails_pairing_with_the_reason(home, capsys):
    code, output = exit_of(capsys, ["--server", "http://127.0.0.1:9", "--pair", "ABCDE-FGHJK"])
    assert code == service.EXIT_REFUSED and "cannot reach http://127.0.0.1:9/agent/pair" in output.err
    assert not list(home.rglob(credentials.TOKEN_FILE))


class Answers(BaseHTTPRequestHandler):
    """Whatever is not a Tether server: a redirect, or a web page."""

    def do_POST(self):
        if self.path.startswith("/moved"):
            self.send_response(308)
            self.send_header("Location", "https://elsewhere.example/agent/pair")
            self.end_headers()
            return
        body = b"<html>hello</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


@pytest.fixture
def not_tether():
    server = ThreadingHTTPServer(("127.0.0.1", 0), Answers)
    thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_pairing_follows_no_redirect_and_tells_a_web_page_from_a_tether_server(not_tether):
    with pytest.raises(CredentialsError, match="redirects to https://elsewhere.example/agent/pair"):
        credentials.pair(not_tether + "/moved", "ABCDE-FGHJK")
    with pytest.raises(CredentialsError, match="answered HTTP 200, not a Tether pairing answer"):
        credentials.pair(not_tether, "ABCDE-FGHJK")


# -- install-service ------------------------------------------------------------------------------


def install(capsys, home, *extra):
    code, output = exit_of_install(capsys, ["--server", SERVER, "--root", str(home), "--no-start", *extra])
    assert code is None, output.err
    return output.out


def exit_of_install(capsys, argv):
    try:
        result = main(["install-service", *argv])
    except SystemExit as done:
        result = done.code
    return result, capsys.readouterr()


def test_install_service_writes_a_systemd_user_unit_that_restarts_the_agent(home, capsys):
    state_dir = paired_state_dir(home)

    out = install(capsys, home, "--manager", "systemd")

    path = home / ".config" / "systemd" / "user" / "tether-agent.service"
    unit = path.read_text()
    lines = unit.splitlines()
    exec_start = next(line for line in lines if line.startswith("ExecStart="))
    assert shlex.split(exec_start[len("ExecStart=") :]) == [
        sys.executable,
        "-m",
        "agent_client",
        "--server",
        SERVER,
        "--state-dir",
        str(state_dir),
        "--root",
        str(home),
        "--idle-timeout",
        "600",
        "--max-warm-sessions",
        "4",
        "--max-message-mb",
        "64",
        "--permission-timeout",
        "300",
    ]
    for expected in (
        f"Description=Tether agent for {SERVER}",
        "Restart=on-failure",
        "RestartPreventExitStatus=78",
        "WantedBy=default.target",
        "EnvironmentFile=-%h/.config/tether-agent/environment",
    ):
        assert expected in lines
    assert (
        f'Environment="PATH={os.environ["PATH"]}"' in lines
        or f"Environment=PATH={os.environ['PATH']}" in lines
    )
    assert "tether_secret-token" not in unit  # the token stays in the state directory
    assert f"Wrote {path} (systemd)." in out
    assert f"Remove it: systemctl --user disable --now tether-agent.service && rm {path}" in out
    assert "systemctl --user enable tether-agent.service" in out  # how to start it, since --no-start


def test_install_service_writes_a_launchd_agent_that_starts_at_login_and_after_a_failure(home, capsys):
    state_dir = paired_state_dir(home, "studio")

    out = install(capsys, home, "--manager", "launchd", "--name", "studio", "--demo")

    path = home / "Library" / "LaunchAgents" / "tether-agent-studio.plist"
    plist = plistlib.loads(path.read_bytes())
    assert plist["Label"] == "tether-agent-studio"
    assert plist["ProgramArguments"] == [
        sys.executable,
        "-m",
        "agent_client",
        "--server",
        SERVER,
        "--state-dir",
        str(state_dir),
        "--name",
        "studio",
        "--root",
        str(home),
        "--demo",
        "--idle-timeout",
        "600",
        "--max-warm-sessions",
        "4",
        "--max-message-mb",
        "64",
        "--permission-timeout",
        "300",
    ]
    assert plist["RunAtLoad"] is True
    assert plist["KeepAlive"] == {"SuccessfulExit": False}
    assert plist["EnvironmentVariables"]["PATH"] == os.environ["PATH"]
    assert plist["StandardErrorPath"] == str(home / "Library" / "Logs" / "tether-agent-studio.log")
    assert "tether_secret-token" not in path.read_text()
    assert f"Wrote {path} (launchd)." in out
    assert f"Remove it: launchctl bootout gui/$(id -u)/tether-agent-studio; rm {path}" in out


def test_install_service_refuses_an_agent_that_was_never_paired(home, capsys):
    code, output = exit_of_install(capsys, ["--server", SERVER, "--root", str(home), "--no-start"])
    assert code == service.EXIT_REFUSED
    assert "pair this machine first" in output.err
    assert not (home / ".config" / "systemd").exists()


@pytest.mark.parametrize(
    "word, quoted",
    [
        ("/usr/bin/python3", "/usr/bin/python3"),
        ("/home/me/my code", '"/home/me/my code"'),
        ("100%", "100%%"),
        ("$HOME", '"$$HOME"'),
        ('say "hi"\\', '"say \\"hi\\"\\\\"'),
        ("", '""'),
    ],
)
def test_systemd_words_are_quoted_and_escaped(word, quoted):
    assert service.systemd_quote(word) == quoted


def test_the_service_runs_the_options_it_was_given_with_absolute_paths(home):
    args = parse_args(
        ["--server", SERVER, "--claude", "bin/claude", "--allow-bypass-permissions", "--idle-timeout", "30"],
        service=True,
    )
    argv = service_argv(args, ["/srv/code"], "/state")
    assert argv[argv.index("--claude") + 1] == os.path.abspath("bin/claude")
    assert "--allow-bypass-permissions" in argv and argv[argv.index("--idle-timeout") + 1] == "30"


@pytest.mark.integration
def test_the_systemd_unit_passes_systemd_analyze_verify(home, capsys, tmp_path):
    """systemd's own parser reads the unit (in system mode: no user manager runs here)."""
    odd_root = tmp_path / "my code 100%"
    odd_root.mkdir()
    paired_state_dir(home)
    install(capsys, home, "--manager", "systemd", "--root", str(odd_root))
    path = home / ".config" / "systemd" / "user" / "tether-agent.service"
    done = subprocess.run(
        ["systemd-analyze", "verify", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0 and done.stderr == "", done.stderr
