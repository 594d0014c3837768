"""The agent's token: traded once for a pairing code, then kept in its state directory.

`tether-agent --server URL --pair CODE` posts the code to the server's `/agent/pair`
and gets the agent's token back. The token goes into STATE_DIR/token.json (mode 0600,
the directory 0700) with the server it belongs to, so it never has to appear on a
command line, in a shell history or in a process list, and is never sent to another
server than the one that issued it.
"""

import contextlib
import json
import os
import tempfile

import requests

TOKEN_FILE = "token.json"
PAIR_PATH = "/agent/pair"
PAIR_TIMEOUT = 30


class CredentialsError(RuntimeError):
    """Pairing failed, or there is no token to log in with; the message says what to do."""


def normalise_server(url):
    return url.rstrip("/")


def pair(server, code):
    """Trade a pairing code for the agent's token; returns the server's answer (token, agentName)."""
    url = normalise_server(server) + PAIR_PATH
    try:
        # A redirect would turn the POST into a GET (and could carry the code elsewhere).
        reply = requests.post(url, json={"code": code}, timeout=PAIR_TIMEOUT, allow_redirects=False)
    except requests.RequestException as error:
        raise CredentialsError(f"cannot reach {url}: {error}") from None
    if reply.is_redirect:
        raise CredentialsError(
            f"{url} redirects to {reply.headers.get('Location')}: give that server's address as --server"
        )
    try:
        answer = reply.json()
    except ValueError:
        answer = None
    if not isinstance(answer, dict):
        raise CredentialsError(f"{url} answered HTTP {reply.status_code}, not a Tether pairing answer")
    if not answer.get("ok") or not isinstance(answer.get("token"), str):
        error = answer.get("error") if isinstance(answer.get("error"), dict) else {}
        message = error.get("message") or f"HTTP {reply.status_code}"
        raise CredentialsError(f"the server refused the pairing code: {message}")
    return answer


def token_path(state_dir):
    return os.path.join(state_dir, TOKEN_FILE)


def save_token(state_dir, server, token, agent_name=None):
    """Keep the token for `server`, readable by this user only; replaces any earlier one."""
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    record = {"server": normalise_server(server), "token": token, "agentName": agent_name}
    # Written to a private temporary file, then renamed: never a moment with a
    # half-written or world-readable token.
    handle, temporary = tempfile.mkstemp(prefix=".token-", dir=state_dir)
    try:
        os.fchmod(handle, 0o600)
        with os.fdopen(handle, "w", encoding="utf-8") as file:
            json.dump(record, file)
        os.replace(temporary, token_path(state_dir))
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(temporary)
        raise
    return token_path(state_dir)


def load_token(state_dir, server):
    """The kept token for `server`, or None when this state directory has none."""
    path = token_path(state_dir)
    try:
        with open(path, encoding="utf-8") as file:
            record = json.load(file)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        raise CredentialsError(f"cannot read {path}: {error}") from None
    if not isinstance(record, dict) or not isinstance(record.get("token"), str):
        raise CredentialsError(f"{path} holds no token; pair again with --pair CODE")
    if record.get("server") != normalise_server(server):
        raise CredentialsError(
            f"{path} holds the token of {record.get('server')}, not of {normalise_server(server)}: "
            "pair with this server (--pair CODE), or give another --state-dir"
        )
    return record["token"]
