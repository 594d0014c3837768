from flask import Blueprint

bp = Blueprint("main", __name__)

from app.main import files, routes, sharing  # noqa: E402,F401
