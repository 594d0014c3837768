"""tether-agent --server URL [--pair CODE | --token TOKEN] [--name NAME] [--root DIR]...

The same as `python -m agent_client`. `tether-agent install-service --server URL [options]`
makes it a service of the user that starts at login and again after a failure.
"""

import argparse
import logging
import os
import signal
import sys

from agent_client.credentials import CredentialsError, load_token, pair, save_token, token_path
from agent_client.service import EXIT_REFUSED
from agent_client.workdirs import WorkdirRefused, normalise_roots

CLI_ENV = {
    "DISABLE_TELEMETRY": "1",
    "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    "DISABLE_AUTOUPDATER": "1",
}


def build_parser(service=False):
    prog = "tether-agent install-service" if service else "tether-agent"
    parser = argparse.ArgumentParser(prog=prog, description=__doc__)
    parser.add_argument("--server", required=True, help="Tether server URL, e.g. http://127.0.0.1:5000")
    if not service:
        parser.add_argument("--token", help="agent token (or TETHER_AGENT_TOKEN)")
        parser.add_argument(
            "--pair", metavar="CODE", help="pairing code from the dashboard: traded once for the token"
        )
    parser.add_argument("--name", help="name shown in the browser (default: hostname)")
    parser.add_argument(
        "--root",
        action="append",
        default=[],
        help="directory Claude Code may work under (repeatable; default: your home)",
    )
    parser.add_argument("--claude", help="path of another Claude Code CLI than the bundled one")
    parser.add_argument("--state-dir", help="where the token and unsent output are kept")
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
        "--max-warm-sessions",
        type=positive_int,
        default=4,
        help="Claude Code processes kept alive between prompts (about 175 MB each); "
        "the least recently used idle one is closed first (default: 4)",
    )
    parser.add_argument(
        "--max-message-mb",
        type=positive_int,
        default=64,
        help="largest message read from Claude Code, in MiB: a whole answer, or a whole "
        "file a tool call writes (default: 64)",
    )
    parser.add_argument(
        "--permission-timeout",
        type=float,
        default=300.0,
        help="seconds a tool permission waits for an answer before it is denied",
    )
    parser.add_argument("-v", "--verbose", action="store_true")
    if service:
        parser.add_argument(
            "--manager",
            choices=("systemd", "launchd"),
            help="service manager to write for (default: launchd on macOS, systemd elsewhere)",
        )
        parser.add_argument("--no-start", action="store_true", help="only write the file; start nothing")
    return parser


def parse_args(argv, service=False):
    parser = build_parser(service)
    args = parser.parse_args(argv)
    if not service:
        if args.token and args.pair:
            parser.error("give --token or --pair, not both")
        # The environment's token counts only when no pairing code was given.
        args.token = args.token or (None if args.pair else os.environ.get("TETHER_AGENT_TOKEN"))
    return args


def positive_int(text):
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be 1 or more, not {value}")
    return value


def fail(message):
    print(f"error: {message}", file=sys.stderr)
    sys.exit(EXIT_REFUSED)


def default_state_dir(name):
    base = os.environ.get("XDG_STATE_HOME") or os.path.expanduser("~/.local/state")
    return os.path.join(base, "tether-agent", name)


def agent_name(args):
    import socket

    return args.name or socket.gethostname()


def state_dir_of(args):
    return os.path.abspath(os.path.expanduser(args.state_dir or default_state_dir(agent_name(args))))


def resolve_token(args, state_dir):
    """--token as given; --pair traded for a token that is kept; otherwise the kept one."""
    log = logging.getLogger("tether.agent")
    if args.token:
        return args.token
    if args.pair:
        answer = pair(args.server, args.pair)
        path = save_token(state_dir, args.server, answer["token"], answer.get("agentName"))
        log.info("paired as agent %s; its token is kept in %s", answer.get("agentName"), path)
        return answer["token"]
    token = load_token(state_dir, args.server)
    if token is None:
        raise CredentialsError(
            f"no token for {args.server} in {token_path(state_dir)}: pair this machine with "
            "--pair CODE (a code from the dashboard, or `flask agents pair USER AGENT`), or give --token"
        )
    return token


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
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["install-service"]:
        return install_service(argv[1:])
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(message)s",
    )
    try:
        roots = normalise_roots(args.root)
    except WorkdirRefused as error:
        fail(error)
    from agent_client.claude_runner import SessionManager
    from agent_client.client import AgentClient, FatalConnectError

    name = agent_name(args)
    state_dir = state_dir_of(args)
    try:
        token = resolve_token(args, state_dir)
    except CredentialsError as error:
        fail(error)
    env = claude_environment(args, state_dir)

    def runner_factory(sink):
        return SessionManager(
            sink,
            cli_path=args.claude,
            env=env,
            idle_timeout=args.idle_timeout,
            permission_timeout=args.permission_timeout,
            allow_bypass=args.allow_bypass_permissions,
            max_message_bytes=args.max_message_mb * 1024 * 1024,
            max_warm_sessions=args.max_warm_sessions,
        )

    agent = AgentClient(
        args.server,
        token,
        name=name,
        roots=roots,
        runner_factory=runner_factory,
        state_dir=os.path.join(state_dir, "outbox"),
        demo=args.demo,
    )
    # SIGTERM (a service manager, `make run`) and Ctrl+C only ask run() to return; the agent
    # then stops once, here, whatever other signals arrive while it does.
    # (python-socketio's own SIGINT handler, replaced here, would disconnect and then raise.)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: agent.request_stop())
    try:
        agent.run()
    except FatalConnectError as error:
        fail(error)
    finally:
        agent.stop()


def install_service(argv):
    """Write (and start) a service that runs this agent at login and after a failure."""
    from agent_client import service

    args = parse_args(argv, service=True)
    try:
        roots = normalise_roots(args.root)
    except WorkdirRefused as error:
        fail(error)
    state_dir = state_dir_of(args)
    try:
        if load_token(state_dir, args.server) is None:
            raise CredentialsError(
                f"no token for {args.server} in {token_path(state_dir)}: pair this machine first "
                f"(tether-agent --server {args.server} --pair CODE), then install the service"
            )
    except CredentialsError as error:
        fail(error)
    unit = service.for_manager(args.manager, args.name, service_argv(args, roots, state_dir))
    service.install(unit, start=not args.no_start)


def service_argv(args, roots, state_dir):
    """The command the service runs: this Python, the options given, absolute paths, no token."""
    argv = [sys.executable, "-m", "agent_client", "--server", args.server, "--state-dir", state_dir]
    if args.name:
        argv += ["--name", args.name]
    for root in roots:
        argv += ["--root", root]
    if args.claude:
        argv += ["--claude", os.path.abspath(os.path.expanduser(args.claude))]
    if args.demo:
        argv.append("--demo")
    if args.allow_bypass_permissions:
        argv.append("--allow-bypass-permissions")
    argv += ["--idle-timeout", f"{args.idle_timeout:g}"]
    argv += ["--max-warm-sessions", str(args.max_warm_sessions), "--max-message-mb", str(args.max_message_mb)]
    argv += ["--permission-timeout", f"{args.permission_timeout:g}"]
    if args.verbose:
        argv.append("--verbose")
    return argv


if __name__ == "__main__":
    main()
