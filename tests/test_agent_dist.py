"""The tether-agent wheel the server builds from its own code, the endpoints that serve it, and the
agent's version: reported at connect, stored, and marked on the dashboard when it differs."""

import ast
import base64
import hashlib
import html
import re
import shutil
import sys
import zipfile

import pytest

from agent_client import version as agent_version
from app import agent_dist, db
from app.models import Agent, utcnow
from config import BASE_DIR
from protocol import PROTOCOL_VERSION

SERVER_ONLY = ("flask", "gevent", "eventlet", "psycopg", "sqlalchemy", "redis", "alembic", "wtforms")
# What the agent's modules may import: the standard library, themselves, their dependencies.
AGENT_IMPORTS = {"agent_client", "protocol", "socketio", "engineio", "requests", "websocket"} | {
    "marshmallow",
    "claude_agent_sdk",
}


@pytest.fixture
def built(tmp_path):
    """The wheel, written into a temporary directory; (path, zip archive)."""
    path = agent_dist.write_wheel(tmp_path)
    with zipfile.ZipFile(path) as archive:
        yield path, archive


def dist_info(archive):
    return next(name.split("/")[0] for name in archive.namelist() if ".dist-info/" in name)


def checkout_copy(tmp_path):
    """The agent's packages and requirements.txt copied to a directory of their own."""
    root = tmp_path / "checkout"
    for package in agent_version.PACKAGES:
        shutil.copytree(BASE_DIR / package, root / package, ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(BASE_DIR / "requirements.txt", root / "requirements.txt")
    return root


# -- the wheel ------------------------------------------------------------------------------------


def test_the_wheel_holds_the_agent_and_the_protocol_and_nothing_of_the_server(built):
    path, archive = built
    version = agent_version.checkout_version()
    assert path.endswith(f"/tether_agent-{version}-py3-none-any.whl")
    tops = {name.split("/")[0] for name in archive.namelist()}
    assert tops == {"agent_client", "protocol", f"tether_agent-{version}.dist-info"}
    for arcname, source in agent_version.package_files():
        with open(source, "rb") as file:
            assert archive.read(arcname) == file.read(), arcname
    assert archive.read("agent_client/_build.py").decode().endswith(f"VERSION = {version!r}\n")


def test_the_metadata_names_the_command_python_and_only_the_agents_pinned_dependencies(built):
    _, archive = built
    info = dist_info(archive)
    metadata = archive.read(f"{info}/METADATA").decode().splitlines()
    assert "Name: tether-agent" in metadata
    assert f"Version: {agent_version.checkout_version()}" in metadata
    assert "Requires-Python: >=3.11" in metadata
    requires = [line.split(": ", 1)[1] for line in metadata if line.startswith("Requires-Dist: ")]
    pins = dict(
        line.split("==") for line in (BASE_DIR / "requirements.txt").read_text().splitlines() if "==" in line
    )
    assert requires == [f"{name}=={pins[name]}" for name in agent_version.DEPENDENCIES]
    assert not any(name in requirement.lower() for requirement in requires for name in SERVER_ONLY)
    assert archive.read(f"{info}/entry_points.txt").decode() == (
        "[console_scripts]\ntether-agent = agent_client.__main__:main\n"
    )
    wheel = archive.read(f"{info}/WHEEL").decode().splitlines()
    assert "Tag: py3-none-any" in wheel and "Root-Is-Purelib: true" in wheel


def test_record_lists_every_file_with_its_sha256_and_size(built):
    _, archive = built
    info = dist_info(archive)
    rows = [line.split(",") for line in archive.read(f"{info}/RECORD").decode().splitlines()]
    assert sorted(name for name, _, _ in rows) == sorted(archive.namelist())
    for name, digest, size in rows:
        if name == f"{info}/RECORD":
            assert (digest, size) == ("", "")
            continue
        data = archive.read(name)
        expected = base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()
        assert (digest, int(size)) == (f"sha256={expected}", len(data)), name


def test_the_same_sources_make_the_same_bytes_and_any_change_a_new_version(tmp_path, monkeypatch):
    root = checkout_copy(tmp_path)
    monkeypatch.setattr(agent_dist, "_built", {})
    first = agent_dist.build_wheel(root)
    monkeypatch.setattr(agent_dist, "_built", {})
    again = agent_dist.build_wheel(root)
    assert again.data == first.data and again.version == first.version == agent_version.checkout_version()

    (root / "agent_client" / "outbox.py").write_text((root / "agent_client" / "outbox.py").read_text() + "\n")
    edited = agent_dist.build_wheel(root)
    requirements = root / "requirements.txt"
    requirements.write_text(re.sub(r"marshmallow==\S+", "marshmallow==4.0.0", requirements.read_text()))
    repinned = agent_dist.build_wheel(root)
    requirements.write_text(requirements.read_text() + "some-server-only-package==1.0\n")
    unrelated = agent_dist.build_wheel(root)

    assert len({first.version, edited.version, repinned.version}) == 3
    assert unrelated.version == repinned.version  # a server-only pin is none of the agent's business
    assert re.fullmatch(r"0\.1\.0\+src[0-9a-f]{12}", edited.version)


def test_an_agent_in_a_checkout_reports_the_version_the_server_builds(app):
    assert (
        agent_version.agent_version() == agent_dist.current(app).version == agent_dist.build_wheel().version
    )


def test_the_agents_modules_import_only_the_standard_library_and_their_dependencies():
    allowed = set(sys.stdlib_module_names) | AGENT_IMPORTS | {"__future__"}
    for arcname, path in agent_version.package_files():
        with open(path, encoding="utf-8") as file:
            tree = ast.parse(file.read(), path)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0:
                names = [node.module]
            else:
                continue
            for name in names:
                assert name.split(".")[0] in allowed, f"{arcname} imports {name}"


# -- served by the server -------------------------------------------------------------------------


def test_agent_install_names_the_version_and_the_wheel_path(app, client):
    reply = client.get("/agent/install")
    wheel = agent_dist.current(app)
    assert reply.status_code == 200
    assert reply.get_json() == {
        "version": wheel.version,
        "wheel": f"/agent/tether_agent-{wheel.version}-py3-none-any.whl",
        "sha256": wheel.sha256,
    }


def test_the_wheel_is_served_at_its_path_without_login_and_nothing_else_is(app, client):
    path = client.get("/agent/install").get_json()["wheel"]
    reply = client.get(path)
    assert reply.status_code == 200
    assert reply.data == agent_dist.current(app).data
    assert hashlib.sha256(reply.data).hexdigest() == client.get("/agent/install").get_json()["sha256"]
    assert reply.headers["Content-Type"] == "application/octet-stream"
    assert client.get(path, headers={"If-None-Match": reply.headers["ETag"]}).status_code == 304

    for other in ("/agent/tether_agent-0.0.1-py3-none-any.whl", "/agent/wsgi.py", "/agent/..%2Fconfig.py"):
        missing = client.get(other)
        assert missing.status_code == 404 and missing.get_json()["ok"] is False


# -- the version an agent reports -----------------------------------------------------------------


def test_the_version_an_agent_reports_is_stored_and_sent_with_its_status(app, seed, sockets):
    browser = sockets.browser(seed)
    agent = sockets.agent(seed.token, version="0.1.0+srcabcdef123456")
    assert agent.connected
    status = browser.wait_for("agent_status", lambda s: s["online"])[-1]
    assert status["version"] == "0.1.0+srcabcdef123456"
    with app.app_context():
        assert db.session.get(Agent, seed.agent_id).version == "0.1.0+srcabcdef123456"


@pytest.mark.parametrize("version", ["x" * 65, 1, ["0.1.0"]])
def test_a_malformed_version_is_refused_at_connect(app, seed, sockets, version):
    assert not sockets.agent(seed.token, version=version).connected
    with app.app_context():
        assert db.session.get(Agent, seed.agent_id).version is None


def test_a_protocol_mismatch_is_refused_with_the_command_that_updates_the_agent(app, seed):
    from flask_socketio import ConnectionRefusedError

    from app.sockets.agent import _authenticate

    with (
        app.test_request_context(base_url="https://tether.example"),
        pytest.raises(ConnectionRefusedError) as refused,
    ):
        _authenticate({"token": seed.token, "protocolVersion": PROTOCOL_VERSION + 1})
    message, data = refused.value.args
    assert data == {"code": "protocol_mismatch"}
    wheel = agent_dist.current(app).filename
    assert f"~/.tether-agent/bin/pip install https://tether.example/agent/{wheel}" in message


def set_version(app, agent_id, version, seen=True):
    with app.app_context():
        agent = db.session.get(Agent, agent_id)
        agent.version, agent.seen_at = version, utcnow() if seen else None
        db.session.commit()


def outdated_mark(page, agent_id):
    """The update block of an agent on the dashboard: (visible, its command) or None."""
    item = re.search(rf'data-agent-id="{agent_id}".*?</li>', page, re.S).group(0)
    block = re.search(
        r'<div class="agent-update" data-testid="agent-outdated"( hidden)?>(.*?)</div>\s*</div>', item, re.S
    )
    command = re.search(r'<pre class="command[^"]*"[^>]*>([^<]*)<', block.group(2)).group(1)
    return block.group(1) is None, html.unescape(command)


def test_the_dashboard_marks_an_agent_of_another_version_with_the_command_that_updates_it(app, client, seed):
    client.post("/login", data={"username": seed.username, "password": seed.password})
    wheel = agent_dist.current(app)
    expected = f"~/.tether-agent/bin/pip install http://localhost/agent/{wheel.filename}"

    assert outdated_mark(client.get("/").get_data(as_text=True), seed.agent_id) == (
        False,
        expected,
    )  # never seen
    set_version(app, seed.agent_id, wheel.version)
    assert outdated_mark(client.get("/").get_data(as_text=True), seed.agent_id)[0] is False
    set_version(app, seed.agent_id, "0.0.9+srcold")
    page = client.get("/").get_data(as_text=True)
    assert outdated_mark(page, seed.agent_id) == (True, expected)
    assert "0.0.9+srcold" in page
    set_version(app, seed.agent_id, None)  # an agent from before versions were reported
    assert outdated_mark(client.get("/").get_data(as_text=True), seed.agent_id)[0] is True
