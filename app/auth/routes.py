import functools
import secrets
from urllib.parse import urlsplit

from flask import current_app, flash, jsonify, redirect, render_template, request, session, url_for
from flask_login import current_user, login_required, login_user, logout_user
from werkzeug.security import check_password_hash, generate_password_hash

from app import accounts, db, login
from app.auth import bp
from app.auth.forms import LoginForm
from app.auth.throttle import LoginThrottle
from app.models import User


def _throttle():
    ext = current_app.extensions
    if "tether_login_throttle" not in ext:
        ext["tether_login_throttle"] = LoginThrottle(
            current_app.config["LOGIN_MAX_FAILURES"], current_app.config["LOGIN_FAILURE_WINDOW"]
        )
    return ext["tether_login_throttle"]


def _safe_next(target):
    """Only follow a relative `next` so the login form cannot redirect off-site."""
    if target and not urlsplit(target).netloc and target.startswith("/"):
        return target
    return url_for("main.dashboard")


def _password_matches(user, password):
    """Check the password; an unknown user costs the same hash, so timing tells nothing."""
    if user is None:
        check_password_hash(_dummy_hash(current_app.config["PASSWORD_HASH_METHOD"]), password)
        return False
    return user.check_password(password)


@functools.cache
def _dummy_hash(method):
    return generate_password_hash(secrets.token_hex(16), method=method)


@login.unauthorized_handler
def unauthorized():
    """Pages redirect to the login form; the JSON API answers 401 in its error shape."""
    if request.path.startswith("/api/"):
        error = {"code": "unauthorized", "message": "log in first"}
        return jsonify({"ok": False, "error": error}), 401
    return redirect(url_for("auth.login", next=request.full_path.rstrip("?")))


@bp.route("/login", methods=["GET", "POST"])
def login():
    """Sign in with username and password."""
    if current_user.is_authenticated:
        return redirect(url_for("main.dashboard"))
    form = LoginForm()
    error = None
    if form.validate_on_submit():
        key = (request.remote_addr, form.username.data.lower())
        if _throttle().blocked(key):
            error = "Too many failed attempts. Wait a few minutes and try again."
            return render_template("login.html", form=form, error=error), 429
        user = db.session.scalar(db.select(User).filter_by(username=form.username.data))
        if _password_matches(user, form.password.data):
            _throttle().succeeded(key)
            record = accounts.start_login(user, request.user_agent.string, request.remote_addr)
            session.clear()  # a fresh session for a fresh login
            session["login_id"] = record.id
            login_user(user)
            return redirect(_safe_next(request.args.get("next")))
        _throttle().failed(key)
        error = "Wrong username or password."
    elif request.method == "POST":
        error = "The form expired or was incomplete. Please try again."
    return render_template("login.html", form=form, error=error)


@bp.route("/logout", methods=["POST"])
@login_required
def logout():
    """Sign out (POST, so a foreign page cannot log you out with a link); this login's sockets close."""
    accounts.end_login(session.get("login_id"))
    logout_user()
    flash("Signed out.")
    return redirect(url_for("auth.login"))
