"""Installing an agent on another machine: its wheel, built from this server's code, and pairing."""

from flask import Blueprint

bp = Blueprint("install", __name__)

from app.install import routes  # noqa: E402,F401
