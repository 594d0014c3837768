import functools

from flask import (
    current_app,
    flash,
    jsonify,
    redirect,
    render_template,
    request,
    send_from_directory,
    url_for,
)
from flask_login import current_user, login_required

from app import notify, push
from app.main.sharing import account_context
from app.notifications import bp
from app.notifications.forms import NotificationSettingsForm


def _error(status, code, message, fields=None):
    error = {"code": code, "message": message}
    if fields is not None:
        error["fields"] = fields
    return jsonify({"ok": False, "error": error}), status


def api_login_required(view):
    """Like login_required, but a JSON 401 instead of a redirect to the login form."""

    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if not current_user.is_authenticated:
            return _error(401, "unauthorized", "log in first")
        return view(*args, **kwargs)

    return wrapped


MAX_BODY_BYTES = 16 * 1024  # a PushSubscription's JSON is well under 1 KiB


def _json_body():
    if (request.content_length or 0) > MAX_BODY_BYTES:
        raise push.SubscriptionError(f"the body may hold at most {MAX_BODY_BYTES} bytes", {})
    request.max_content_length = MAX_BODY_BYTES  # a chunked body is cut off there too (413)
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise push.SubscriptionError("the body must be a JSON object", {})
    return body


@bp.errorhandler(push.SubscriptionError)
def _refused(error):
    return _error(400, "invalid_message", str(error), error.fields)


@bp.route("/account", methods=["GET", "POST"])
@login_required
def account():
    """The signed-in user's account: logins and password (app/main/sharing.py), notification
    settings and this browser's push subscription."""
    form = NotificationSettingsForm()
    if form.validate_on_submit():
        push.save_settings(current_user.id, form.permission.data, form.finished.data)
        flash("Notification settings saved.")
        return redirect(url_for("notifications.account"))
    if request.method == "GET":
        settings = push.settings_of(current_user.id)
        form.permission.data, form.finished.data = settings.permission, settings.finished
    long_run = int(current_app.config["PUSH_LONG_RUN_SECONDS"])
    return render_template("account.html", form=form, long_run=long_run, **account_context())


@bp.route("/push/key")
@api_login_required
def push_key():
    """The VAPID application server key that browsers subscribe with."""
    return jsonify({"publicKey": push.public_key()})


@bp.route("/push/subscriptions", methods=["POST"])
@api_login_required
def subscribe():
    """Store this browser's PushSubscription for the signed-in user (201)."""
    push.save_subscription(current_user.id, _json_body())
    return jsonify({"ok": True}), 201


@bp.route("/push/subscriptions", methods=["DELETE"])
@api_login_required
def unsubscribe():
    """Forget this browser's PushSubscription."""
    return jsonify({"ok": True, "removed": push.remove_subscription(current_user.id, _json_body())})


@bp.route("/push/test", methods=["POST"])
@api_login_required
def test_push():
    """Push a test notification to every browser of the user (one per TEST_EVERY seconds)."""
    sent = push.send_test(current_user.id)
    if sent is None:
        return _error(429, "rate_limited", "a test notification was sent a moment ago; try again shortly")
    if not sent:
        return _error(404, "not_found", "no browser of yours receives notifications yet: enable them first")
    return jsonify({"ok": True, "browsers": sent}), 202


@bp.route("/api/needs-you")
@login_required
def needs_you():
    """The user's sessions that wait for them or run (as session_activity messages)."""
    return jsonify(notify.activities_for(current_user.id))


@bp.route("/sw.js")
def service_worker():
    """The service worker, at the root so that its scope is the whole site."""
    response = send_from_directory(current_app.static_folder, "sw.js", mimetype="text/javascript", max_age=0)
    response.headers["Cache-Control"] = "no-cache"
    return response


@bp.app_template_global()
def needs_you_now():
    """For the dashboard: what needs the signed-in user, rendered before the socket says more."""
    return notify.activities_for(current_user.id)
