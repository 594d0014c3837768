"""The `tether-agent` wheel, built from this server's own code, and the commands that install it.

A wheel is a zip archive: the packages, plus a `.dist-info` folder with METADATA,
WHEEL, entry_points.txt and RECORD (each file's SHA-256). Writing it with the standard
library needs no build tool at run time, and a fixed order, fixed timestamps and fixed
modes make it byte-for-byte the same for the same sources, in every server process.

The version and the list of files come from agent_client/version.py, which an agent
run from a checkout also uses, so that it reports the version this server would build.
The wheel is built once per process when the app is created (a few milliseconds) and
kept in memory: the running code is what gets served, and a restart with changed code
builds a new one.
"""

import base64
import hashlib
import io
import shlex
import zipfile
from dataclasses import dataclass

from agent_client import version as agent_version
from config import BASE_DIR

DIST_NAME = "tether-agent"
WHEEL_NAME = "tether_agent"
WHEEL_TAG = "py3-none-any"
REQUIRES_PYTHON = ">=3.11"
CONSOLE_SCRIPT = "tether-agent = agent_client.__main__:main"
# 1980-01-01, the earliest time a zip entry can carry: the same bytes on every build.
ZIP_TIME = (1980, 1, 1, 0, 0, 0)
# Where the dashboard's install command puts the agent on a machine.
AGENT_HOME = "~/.tether-agent"

_built = {}  # version -> AgentWheel: apps created in one process share the build


@dataclass(frozen=True)
class AgentWheel:
    version: str
    filename: str
    data: bytes

    @property
    def sha256(self):
        return hashlib.sha256(self.data).hexdigest()

    @property
    def path(self):
        """The URL path it is served at."""
        return f"/agent/{self.filename}"


def build_wheel(root=BASE_DIR):
    """The agent's wheel for the checkout at `root` (cached per version)."""
    root = str(root)
    with open(f"{root}/requirements.txt", encoding="utf-8") as file:
        requirements = agent_version.pinned_requirements(file.read())
    files = agent_version.package_files(root)
    version = agent_version.version_of(files, requirements)
    if version not in _built:
        _built[version] = AgentWheel(version, wheel_filename(version), _zip(files, requirements, version))
    return _built[version]


def write_wheel(directory, root=BASE_DIR):
    """Build the wheel into `directory`; returns its path."""
    wheel = build_wheel(root)
    path = f"{directory}/{wheel.filename}"
    with open(path, "wb") as file:
        file.write(wheel.data)
    return path


def wheel_filename(version):
    return f"{WHEEL_NAME}-{version}-{WHEEL_TAG}.whl"


def _zip(files, requirements, version):
    dist_info = f"{WHEEL_NAME}-{version}.dist-info"
    entries = []
    for arcname, path in files:
        with open(path, "rb") as file:
            entries.append((arcname, file.read()))
    entries.append((agent_version.BUILD_MODULE, _build_module(version)))
    entries += [
        (f"{dist_info}/METADATA", _metadata(version, requirements)),
        (f"{dist_info}/WHEEL", _wheel_file()),
        (f"{dist_info}/entry_points.txt", f"[console_scripts]\n{CONSOLE_SCRIPT}\n".encode()),
        (f"{dist_info}/top_level.txt", "".join(f"{p}\n" for p in agent_version.PACKAGES).encode()),
    ]
    record = "".join(f"{name},sha256={_record_hash(data)},{len(data)}\n" for name, data in entries)
    entries.append((f"{dist_info}/RECORD", (record + f"{dist_info}/RECORD,,\n").encode()))
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for name, data in entries:
            info = zipfile.ZipInfo(name, date_time=ZIP_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            archive.writestr(info, data, compresslevel=9)
    return buffer.getvalue()


def _build_module(version):
    return (
        '"""Written by the Tether server that built this wheel (app/agent_dist.py)."""\n\n'
        f"VERSION = {version!r}\n"
    ).encode()


def _metadata(version, requirements):
    lines = [
        "Metadata-Version: 2.1",
        f"Name: {DIST_NAME}",
        f"Version: {version}",
        "Summary: Tether's agent: connects this machine to a Tether server and runs Claude Code here",
        f"Requires-Python: {REQUIRES_PYTHON}",
        *(f"Requires-Dist: {requirement}" for requirement in requirements),
    ]
    return ("\n".join(lines) + "\n").encode()


def _wheel_file():
    lines = [
        "Wheel-Version: 1.0",
        "Generator: tether (app/agent_dist.py)",
        "Root-Is-Purelib: true",
        f"Tag: {WHEEL_TAG}",
    ]
    return ("\n".join(lines) + "\n").encode()


def _record_hash(data):
    return base64.urlsafe_b64encode(hashlib.sha256(data).digest()).rstrip(b"=").decode()


# -- the app's wheel and the commands the pages show ---------------------------------------------


def init_app(app):
    app.extensions["tether_agent_wheel"] = build_wheel()


def current(app):
    return app.extensions["tether_agent_wheel"]


def wheel_url(server, wheel):
    """The wheel's URL on `server` (the address the browser used, e.g. request.host_url)."""
    return server.rstrip("/") + wheel.path


def install_command(server, wheel, code):
    """One line for a fresh machine with Python 3.11+: a virtual environment, the wheel, pairing.

    `~` stays outside quotes so that the shell expands it; the rest is quoted.
    """
    server = server.rstrip("/")
    bin_dir = f"{AGENT_HOME}/bin"
    return " && ".join(
        [
            f"python3 -m venv {AGENT_HOME}",
            f"{bin_dir}/pip install {shlex.quote(wheel_url(server, wheel))}",
            f"{bin_dir}/tether-agent --server {shlex.quote(server)} --pair {shlex.quote(code)}",
        ]
    )


def update_command(server, wheel):
    """What brings an agent installed by install_command to this server's version."""
    return f"{AGENT_HOME}/bin/pip install {shlex.quote(wheel_url(server, wheel))}"


def service_command(server):
    """What keeps an installed agent running: at login, and again after a failure."""
    return f"{AGENT_HOME}/bin/tether-agent install-service --server {shlex.quote(server.rstrip('/'))}"
