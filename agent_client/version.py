"""The agent's version, and what its wheel holds: the one place both sides compute them.

The server builds the `tether-agent` wheel from its own checkout (app/agent_dist.py); an
agent reports its version when it connects, and the dashboard marks one that differs from
the server's. Both must agree without talking, so the version is a function of exactly
what goes into the wheel: BASE_VERSION plus a local label made of the SHA-256 of the
packages' sources and of the dependency pins, e.g. `0.1.0+src3f2a9c0d1e4b`.

An installed agent reads the version the server wrote into its wheel (`agent_client/_build.py`);
an agent run from a checkout computes it here, the same way the server does. Standard
library only: the agent must not import the server.
"""

import functools
import hashlib
import os
import re

BASE_VERSION = "0.1.0"
PACKAGES = ("agent_client", "protocol")
# What the agent needs at run time, pinned as in the server's requirements.txt: the
# Socket.IO client with its transports (requests, websocket-client), the wire schemas'
# marshmallow and Claude Code's SDK. Nothing of the server's.
DEPENDENCIES = (
    "python-socketio",
    "python-engineio",
    "requests",
    "websocket-client",
    "marshmallow",
    "claude-agent-sdk",
)
# Written into the wheel only; never part of the digest.
BUILD_MODULE = "agent_client/_build.py"
CHECKOUT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PIN = re.compile(r"^\s*([A-Za-z0-9][A-Za-z0-9._-]*)(\[[^\]]*\])?\s*==\s*([^\s;#]+)")


def package_files(root=CHECKOUT):
    """[(name in the wheel, path on disk)] of every module of PACKAGES, sorted."""
    found = []
    for package in PACKAGES:
        for directory, subdirs, files in os.walk(os.path.join(root, package)):
            subdirs[:] = sorted(d for d in subdirs if d != "__pycache__")
            for name in files:
                path = os.path.join(directory, name)
                arcname = os.path.relpath(path, root).replace(os.sep, "/")
                if name.endswith(".py") and arcname != BUILD_MODULE:
                    found.append((arcname, path))
    return sorted(found)


def pinned_requirements(requirements_text):
    """The `name==version` pins of DEPENDENCIES in a requirements file; each must be there."""
    pins = {}
    for line in requirements_text.splitlines():
        match = _PIN.match(line)
        if match:
            pins[_canonical(match.group(1))] = f"{match.group(1)}=={match.group(3)}"
    missing = [name for name in DEPENDENCIES if _canonical(name) not in pins]
    if missing:
        raise ValueError(f"requirements.txt pins no version of {', '.join(missing)}")
    return [pins[_canonical(name)] for name in DEPENDENCIES]


def _canonical(name):
    return re.sub(r"[-_.]+", "-", name).lower()


def version_of(files, requirements):
    """BASE_VERSION plus a label naming these sources and pins.

    The label starts with letters so that no all-digit hash (with a leading zero) is
    rewritten by pip's version normalisation.
    """
    digest = hashlib.sha256()
    for arcname, path in files:
        with open(path, "rb") as file:
            content = file.read()
        digest.update(f"{arcname}\0{len(content)}\0".encode())
        digest.update(content)
    for requirement in requirements:
        digest.update(f"requires\0{requirement}\0".encode())
    return f"{BASE_VERSION}+src{digest.hexdigest()[:12]}"


def checkout_version(root=CHECKOUT):
    """The version of the agent in a checkout at `root` (what the server would build there)."""
    with open(os.path.join(root, "requirements.txt"), encoding="utf-8") as file:
        requirements = pinned_requirements(file.read())
    return version_of(package_files(root), requirements)


@functools.cache
def agent_version():
    """This agent's version: the one its wheel was built with, or that of this checkout."""
    try:
        from agent_client._build import VERSION
    except ImportError:
        pass
    else:
        return VERSION
    try:
        return checkout_version()
    except (OSError, ValueError):  # agent_client copied somewhere without its checkout
        return f"{BASE_VERSION}+unknown"
