"""Sharing in real Chromium: an owner and an operator on one session, a viewer's page, a read-only
link opened without signing in, and "sign out everywhere" reaching another browser."""

import os

from playwright.sync_api import expect

from app import accounts, db
from app.models import AuditEntry, ChatSession, Project
from tests.browser.helpers import ANSWER_TIMEOUT_MS, answer, send, session_id_of, slow_text, turn, wait_state
from tests.conftest import PASSWORD, make_user


def add_member(ui, username, role):
    with ui.live.app.app_context():
        make_user(username)
        accounts.share_project(db.session.get(Project, ui.seed.project_id), username, role)


def sign_in_as(ui, username):
    page = ui.page()
    page.goto("/login")
    page.locator("input[name=username]").fill(username)
    page.locator("input[name=password]").fill(PASSWORD)
    page.locator("form button[type=submit]").click()
    expect(page).to_have_url(ui.url + "/")
    return page


def test_an_operators_prompt_is_named_and_the_owners_answer_is_audited(ui):
    ui.start_agent()
    add_member(ui, "carol", "operator")
    owner = ui.chat()
    send(owner, "say: started by the owner")
    wait_state(turn(owner))
    session_id = session_id_of(owner)
    operator = ui.open_chat(sign_in_as(ui, "carol"), session_id)

    send(operator, "write: from-carol.txt written for carol")
    expect(owner.get_by_test_id("user-message").last).to_contain_text("write: from-carol.txt")
    expect(owner.get_by_test_id("sender").last).to_have_text("carol", timeout=ANSWER_TIMEOUT_MS)
    request = owner.get_by_test_id("permission-request")
    expect(request).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    request.get_by_test_id("allow").click()
    wait_state(turn(operator))
    with open(os.path.join(ui.seed.project_path, "from-carol.txt")) as file:
        assert file.read().strip() == "written for carol"
    with ui.live.app.app_context():
        entries = db.session.scalars(db.select(AuditEntry).filter_by(project_id=ui.seed.project_id)).all()
        who = {(entry.action, entry.user.username) for entry in entries}
    assert ("run", "carol") in who and ("permission", ui.seed.username) in who


def test_a_viewers_page_follows_live_and_offers_no_composer(ui):
    ui.start_agent()
    add_member(ui, "victor", "viewer")
    owner = ui.chat()
    send(owner, "say: first")
    wait_state(turn(owner))
    viewer = ui.open_chat(sign_in_as(ui, "victor"), session_id_of(owner))
    expect(viewer.get_by_test_id("prompt")).to_have_count(0)
    expect(viewer.get_by_test_id("send")).to_have_count(0)

    send(owner, "slow: 60 20")
    expect(answer(viewer)).to_have_text(slow_text(60), timeout=ANSWER_TIMEOUT_MS)
    expect(viewer.get_by_test_id("stop")).to_have_count(0)


def test_a_read_only_link_opens_without_login_and_goes_dark_when_revoked(ui, browsers):
    ui.start_agent()
    owner = ui.chat()
    send(owner, "say: shared by link")
    wait_state(turn(owner))
    session_id = session_id_of(owner)
    with ui.live.app.app_context():
        _, path = accounts.create_session_link(db.session.get(ChatSession, session_id), ui.seed.user_id)

    reader = browsers.page(base_url=ui.url)  # a fresh context: no cookie at all
    reader.goto(path)
    expect(reader.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    expect(answer(reader)).to_have_text("shared by link")
    for hook in ("prompt", "send", "stop", "allow", "deny"):
        expect(reader.get_by_test_id(hook)).to_have_count(0)
    send(owner, "slow: 40 20")
    expect(answer(reader)).to_have_text(slow_text(40), timeout=ANSWER_TIMEOUT_MS)

    with ui.live.app.app_context():
        accounts.revoke_session_links(db.session.get(ChatSession, session_id))
    expect(reader.get_by_test_id("link-ended")).to_be_visible(timeout=5_000)
    expect(reader.get_by_test_id("connection-status")).to_have_attribute("data-state", "disconnected")


def test_sign_out_everywhere_closes_the_other_browsers_socket(ui):
    ui.start_agent()
    elsewhere = ui.chat()
    here = ui.signed_in_page()
    here.goto("/account")
    expect(here.locator("[data-testid=logins] li")).to_have_count(2)
    here.once("dialog", lambda dialog: dialog.accept())
    here.get_by_test_id("sign-out-everywhere").click()
    expect(here).to_have_url(ui.url + "/login")
    expect(elsewhere.get_by_test_id("connection-status")).to_have_attribute(
        "data-state", "disconnected", timeout=5_000
    )
    elsewhere.reload()
    expect(elsewhere).to_have_url(f"{ui.url}/login?next=/projects/{ui.seed.project_id}")
