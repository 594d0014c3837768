"""python -m agent_client --server URL --token TOKEN [--name NAME] [--root DIR]..."""

import argparse
import logging
import os
import signal
import sys

from agent_client.workdirs import WorkdirRefused, normalise_roots

CLI_ENV = {
    "DISABLE_TELEMETRY": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
}


def parse_args(argv):
    parser = argparse.ArgumentParser(prog="python -m agent_client", description=__doc__)
    parser.add_argument("--server", required=True, help="Tether server URL, e.g. http://127.0.0.1:5000")
    parser.add_argument(
        "--token", default=os.environ.get("TETHER_AGENT_TOKEN"), help="agent token (or TETHER_AGENT_TOKEN)"
    )
    parser.add_argument("--name", help="name shown in the browser (default: hostname)")
    parser.add_argument(
        "--root",
        action="append",
        default=[],
        help="directory Claude Code may work under (repeatable; default: your home)",
    )
    parser.add_argument("--claude", help="path of another Claude Code CLI than the bundled one")
    parser.add_argument("--state-dir", help="where unsent output is kept across restarts")
    parser.add_argument(
        "--demo", action="store_true", help="no Anthropic account: answer with Tether's scripted demo model"
    )
    parser.add_argument(
        "--allow-bypass-permissions",
        action="store_true",
        help="let projects use Claude Code's bypassPermissions mode",
    )
    parser.add_argument(
        "--idle-timeout",
        type=float,
        default=600.0,
        help="seconds before an idle session's Claude Code process is closed",
    )
    parser.add_argument(
        "--permission-timeout",
        type=float,
        default=300.0,
        help="seconds a tool permission waits for an answer before it is denied",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)
    if not args.token:
        parser.error("a token is required: --token or TETHER_AGENT_TOKEN")
    return args


def default_state_dir(name):
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "tether-agent", name)


def claude_environment(args, state_dir):
    """Environment for Claude Code; in demo mode it talks to the local stand-in model."""
    env = dict(CLI_ENV)
    if args.demo:
        from agent_client.standin import StandInModel

        model = StandInModel()
        env["ANTHROPIC_BASE_URL"] = model.start()
        env["ANTHROPIC_API_KEY"] = "tether-demo"
        env["CLAUDE_CONFIG_DIR"] = os.path.join(state_dir, "claude-config")
        logging.getLogger("tether.agent").info("demo mode: scripted model at %s", env["ANTHROPIC_BASE_URL"])
    return env


def main(argv=None):
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        roots = normalise_roots(args.root)
    except WorkdirRefused as error:
        sys.exit(f"error: {error}")
    import socket

    from agent_client.claude_runner import SessionManager
    from agent_client.client import AgentClient, FatalConnectError

    name = args.name or socket.gethostname()
    state_dir = args.state_dir or default_state_dir(name)
    env = claude_environment(args, state_dir)

    def runner_factory(sink):
        return SessionManager(
            sink,
            cli_path=args.claude,
            env=env,
            idle_timeout=args.idle_timeout,
            permission_timeout=args.permission_timeout,
            allow_bypass=args.allow_bypass_permissions,
        )

    agent = AgentClient(
        args.server,
        args.token,
        name=name,
        roots=roots,
        runner_factory=runner_factory,
        state_dir=os.path.join(state_dir, "outbox"),
        demo=args.demo,
    )
    signal.signal(signal.SIGTERM, lambda *_: agent.stop())
    try:
        agent.run()
    except FatalConnectError as error:
        sys.exit(f"error: {error}")
    except KeyboardInterrupt:
        pass
    finally:
        agent.stop()


if __name__ == "__main__":
    main()
