"""Start Claude Code so that it ends with the agent that started it.

A Claude Code process whose agent is killed (SIGKILL, the OOM killer) is
re-parented and runs its turn to the end, still calling the model API. So the
runner starts Claude Code through this launcher, which ties the CLI's life to
the agent's and then *execs* the CLI: same pid, so the SDK's pipes and signals
reach Claude Code itself, and nothing stays in between.

- Linux: ``prctl(PR_SET_PDEATHSIG, SIGTERM)``, which survives exec. The kernel
  sends it when the thread that started the process ends, so when the agent
  dies however it dies. (That thread is the session's worker thread, which
  closes its client before it ends, so it never fires early.) SIGTERM, not
  SIGKILL: Claude Code then ends the tool processes it started (a Bash
  command) and exits at once; after SIGKILL they would run on.
- Other POSIX systems (macOS): a small guard process, forked before the exec,
  waits for the agent to exit and then sends Claude Code SIGTERM (SIGKILL if it
  is still there 10 s later). It leaves as soon as Claude Code exits.

Right after tying, the launcher checks that its parent is still the agent: if
the agent died in between, nothing would ever signal the CLI, so it does not
start.

The wrapper script that ``make_wrapper`` writes, into a private temporary
directory of its own, runs this file as
``python -I -S launcher.py MODE AGENT_PID CLI [ARG...]``. It must import
nothing but the standard library.
"""

import contextlib
import os
import select
import shlex
import signal
import stat
import sys
import time

PR_SET_PDEATHSIG = 1  # from <linux/prctl.h>
GUARD_POLL_S = 0.5  # where kqueue is missing, how often the guard looks at the agent
GUARD_GRACE_S = 10.0  # how long Claude Code gets to end after SIGTERM
MODES = ("pdeathsig", "guard")
WRAPPER_PREFIX = "tether-claude-"  # then the agent's pid: a directory left by a dead agent is swept


def default_mode():
    """How this system can tie Claude Code to the agent; None where it cannot (Windows)."""
    if sys.platform.startswith("linux"):
        return "pdeathsig"
    if os.name == "posix":
        return "guard"
    return None


def make_wrapper(cli, mode):
    """A wrapper for `cli` in a new private directory; returns (directory, wrapper path).

    The runner removes the directory when it closes. One left by an agent that was
    killed is removed here, by the next agent of the same user.
    """
    import tempfile

    _sweep_wrappers(tempfile.gettempdir())
    directory = tempfile.mkdtemp(prefix=f"{WRAPPER_PREFIX}{os.getpid()}-")  # mode 0700
    return directory, write_wrapper(directory, cli, mode)


def _sweep_wrappers(base):
    import shutil

    for name in os.listdir(base):
        pid = name[len(WRAPPER_PREFIX) :].split("-", 1)[0]
        if not name.startswith(WRAPPER_PREFIX) or not (pid.isdigit() and len(pid) < 10) or _alive(int(pid)):
            continue
        path = os.path.join(base, name)
        with contextlib.suppress(OSError):
            info = os.lstat(path)
            if stat.S_ISDIR(info.st_mode) and info.st_uid == os.getuid():
                shutil.rmtree(path)


def write_wrapper(directory, cli, mode, agent_pid=None):
    """Write an executable script in `directory` that starts `cli` through this launcher.

    The SDK runs ``cli_path ARGS...``; this script is that cli_path.
    """
    path = os.path.join(directory, "claude")
    agent_pid = os.getpid() if agent_pid is None else agent_pid
    words = [sys.executable, "-I", "-S", os.path.abspath(__file__), mode, str(agent_pid), cli]
    with open(path, "w", encoding="utf-8") as file:
        file.write("#!/bin/sh\nexec " + " ".join(shlex.quote(word) for word in words) + ' "$@"\n')
    os.chmod(path, 0o700)
    return path


# --- the launcher itself ------------------------------------------------------------


def main(argv):
    mode, agent_pid, cli, *args = argv
    agent_pid = int(agent_pid)
    if mode == "pdeathsig":
        _set_parent_death_signal(signal.SIGTERM)
    if os.getppid() != agent_pid:
        _fail(f"the agent (pid {agent_pid}) ended before Claude Code started", 1)
    if mode == "guard":
        _start_guard(agent_pid)
    try:
        os.execv(cli, [cli, *args])
    except OSError as error:
        _fail(f"cannot run Claude Code at {cli}: {error.strerror}", 127)


def _fail(message, code):
    print(f"tether launcher: {message}", file=sys.stderr)
    sys.exit(code)


def _set_parent_death_signal(sig):
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) != 0:
        _fail(f"prctl(PR_SET_PDEATHSIG) failed: {os.strerror(ctypes.get_errno())}", 1)


def _start_guard(agent_pid):
    """Fork the guard; the caller goes on to exec Claude Code, which keeps its pid."""
    cli_pid = os.getpid()
    if os.fork() != 0:
        return
    try:
        # The guard must hold none of Claude Code's pipes, or the SDK would
        # never see them close.
        devnull = os.open(os.devnull, os.O_RDWR)
        for fd in (0, 1, 2):
            os.dup2(devnull, fd)
        os.setsid()  # a Ctrl-C meant for the agent's terminal is not for the guard
        if _agent_exits_first(agent_pid, cli_pid):
            _end(cli_pid)
    finally:
        os._exit(0)


def _agent_exits_first(agent_pid, cli_pid):
    """Wait until the agent or Claude Code exits; True when the agent went first."""
    if hasattr(select, "kqueue"):
        return _wait_kqueue(agent_pid, cli_pid)
    while os.getppid() == cli_pid:  # re-parented once Claude Code exits
        if not _alive(agent_pid):
            return True
        time.sleep(GUARD_POLL_S)
    return False


def _wait_kqueue(agent_pid, cli_pid):
    queue = select.kqueue()
    try:
        for pid in (agent_pid, cli_pid):
            watch = select.kevent(
                pid, filter=select.KQ_FILTER_PROC, flags=select.KQ_EV_ADD, fflags=select.KQ_NOTE_EXIT
            )
            queue.control([watch], 0)
    except ProcessLookupError:
        return os.getppid() == cli_pid  # one of them has already gone: which?
    (event,) = queue.control(None, 1)
    return event.ident == agent_pid


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return False  # the pid now belongs to another user: the agent is gone
    return True


def _end(cli_pid):
    """SIGTERM Claude Code (our parent), then SIGKILL if it has not gone after the grace."""
    os.kill(cli_pid, signal.SIGTERM)
    deadline = time.monotonic() + GUARD_GRACE_S
    while os.getppid() == cli_pid:  # still our parent, so still the same process
        if time.monotonic() > deadline:
            os.kill(cli_pid, signal.SIGKILL)
            return
        time.sleep(0.1)


if __name__ == "__main__":
    main(sys.argv[1:])
