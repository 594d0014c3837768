"""`tether-agent install-service`: the agent as a service of the user, up at login and after a failure.

Linux: a systemd user unit in ~/.config/systemd/user/. macOS: a launchd agent in
~/Library/LaunchAgents/. Each runs the same Python and options the command was given,
with the state directory (where the paired token is kept) spelled out, and never a
token. The file is written, the service (re)started unless --no-start, and the output
says where the file is, where the logs go and how to remove it all.
"""

import os
import plistlib
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass, field

BASE_LABEL = "tether-agent"
# sysexits' EX_CONFIG, the agent's exit status when the server refused it or it has no
# token: restarting cannot help, so the systemd unit does not (RestartPreventExitStatus).
EXIT_REFUSED = 78
RESTART_DELAY = 10  # seconds between a failure and the next start
# Environment read by the systemd unit if it exists (e.g. ANTHROPIC_API_KEY=...; chmod 600).
ENVIRONMENT_FILE = "~/.config/tether-agent/environment"


@dataclass
class Service:
    manager: str
    label: str
    path: str
    text: str
    start: list = field(default_factory=list)  # commands that (re)start it now
    remove: str = ""  # shell line that stops it and removes the file
    logs: str = ""
    notes: list = field(default_factory=list)


def label_for(name):
    """tether-agent, or tether-agent-NAME for an agent given a --name (several on one machine)."""
    if not name:
        return BASE_LABEL
    return f"{BASE_LABEL}-{re.sub(r'[^A-Za-z0-9_.-]+', '-', name).strip('-.') or 'agent'}"


def for_manager(manager, name, argv, environ=None):
    """The service for `manager` (default: this system's) running `argv`."""
    environ = os.environ if environ is None else environ
    manager = manager or ("launchd" if sys.platform == "darwin" else "systemd")
    build = systemd_service if manager == "systemd" else launchd_service
    return build(label_for(name), argv, environ)


# -- systemd (Linux) ----------------------------------------------------------------------------


def systemd_quote(word):
    """One ExecStart/Environment word: quoted when needed, % and $ escaped (systemd expands both)."""
    word = word.replace("%", "%%").replace("$", "$$")
    if word and re.fullmatch(r"[A-Za-z0-9_@%+=:,./-]+", word):
        return word
    return '"' + word.replace("\\", "\\\\").replace('"', '\\"') + '"'


def systemd_service(label, argv, environ):
    config = environ.get("XDG_CONFIG_HOME") or os.path.join(_home(environ), ".config")
    path = os.path.join(config, "systemd", "user", f"{label}.service")
    unit = f"{label}.service"
    text = "\n".join(
        [
            "# Tether agent, written by `tether-agent install-service`.",
            f"# Remove: systemctl --user disable --now {unit} && rm {shlex.quote(path)}",
            "[Unit]",
            "Description=Tether agent for " + _server_of(argv).replace("%", "%%"),
            "",
            "[Service]",
            "Type=simple",
            "ExecStart=" + " ".join(systemd_quote(word) for word in argv),
            "Restart=on-failure",
            f"RestartSec={RESTART_DELAY}",
            "# The server refused this agent (revoked token, other protocol): a restart cannot help.",
            f"RestartPreventExitStatus={EXIT_REFUSED}",
            # Claude Code's tools see the PATH of the shell that installed the service.
            "Environment=" + systemd_quote(f"PATH={environ.get('PATH', '/usr/bin:/bin')}"),
            "Environment=PYTHONUNBUFFERED=1",
            f"EnvironmentFile=-{ENVIRONMENT_FILE.replace('~', '%h', 1)}",
            "",
            "[Install]",
            "WantedBy=default.target",
            "",
        ]
    )
    return Service(
        manager="systemd",
        label=label,
        path=path,
        text=text,
        start=[
            ["systemctl", "--user", "daemon-reload"],
            ["systemctl", "--user", "enable", unit],
            ["systemctl", "--user", "restart", unit],
        ],
        remove=(
            f"systemctl --user disable --now {unit} && rm {shlex.quote(path)} "
            "&& systemctl --user daemon-reload"
        ),
        logs=f"journalctl --user -u {unit} -f",
        notes=[
            "It starts when you log in; to keep it running while you are logged out: "
            "loginctl enable-linger $USER",
            f"Environment for Claude Code (ANTHROPIC_API_KEY=...) goes in {ENVIRONMENT_FILE} (chmod 600).",
        ],
    )


# -- launchd (macOS) ----------------------------------------------------------------------------


def launchd_service(label, argv, environ):
    home = _home(environ)
    path = os.path.join(home, "Library", "LaunchAgents", f"{label}.plist")
    log = os.path.join(home, "Library", "Logs", f"{label}.log")
    plist = {
        "Label": label,
        "ProgramArguments": list(argv),
        "RunAtLoad": True,  # at login
        # Started again whenever it exits with a failure (launchd waits ThrottleInterval).
        "KeepAlive": {"SuccessfulExit": False},
        "ThrottleInterval": RESTART_DELAY,
        "EnvironmentVariables": {"PATH": environ.get("PATH", "/usr/bin:/bin"), "PYTHONUNBUFFERED": "1"},
        "StandardOutPath": log,
        "StandardErrorPath": log,
        "ProcessType": "Background",
    }
    domain = f"gui/{os.getuid()}"
    return Service(
        manager="launchd",
        label=label,
        path=path,
        text=plistlib.dumps(plist).decode(),
        start=[
            ["launchctl", "bootout", f"{domain}/{label}"],  # an older one; fails when there is none
            ["launchctl", "bootstrap", domain, path],
        ],
        remove=f"launchctl bootout gui/$(id -u)/{label}; rm {shlex.quote(path)}",
        logs=f"tail -f {shlex.quote(log)}",
        notes=[
            "launchd restarts it after any failure, a refused token included, every "
            f"{RESTART_DELAY} s: remove it when you revoke the agent.",
            f"Environment for Claude Code (ANTHROPIC_API_KEY) goes under EnvironmentVariables in {path}.",
        ],
    )


def _server_of(argv):
    return argv[argv.index("--server") + 1] if "--server" in argv else "a Tether server"


def _home(environ):
    return environ.get("HOME") or os.path.expanduser("~")


# -- writing and starting -----------------------------------------------------------------------


def install(service, start=True, out=print):
    """Write the service's file, start it unless told not to, and say how to remove it."""
    os.makedirs(os.path.dirname(service.path), exist_ok=True)
    with open(service.path, "w", encoding="utf-8") as file:
        file.write(service.text)
    out(f"Wrote {service.path} ({service.manager}).")
    started = start and _run_start(service, out)
    if not started:
        out("Start it now, and at every login, with:")
        out("  " + " && ".join(shlex.join(command) for command in service.start if "bootout" not in command))
    for note in service.notes:
        out(note)
    out(f"Logs: {service.logs}")
    out(f"Remove it: {service.remove}")
    return started


def _run_start(service, out):
    for command in service.start:
        try:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
        except (OSError, subprocess.TimeoutExpired) as error:
            out(f"Could not run {shlex.join(command)}: {error}")
            return False
        if done.returncode != 0 and "bootout" not in command:
            reason = (done.stderr or done.stdout).strip().splitlines()
            out(f"{shlex.join(command)} failed: {reason[-1] if reason else done.returncode}")
            return False
    out("Started: it runs now, at every login, and again after a failure.")
    return True
