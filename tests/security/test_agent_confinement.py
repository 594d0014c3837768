"""The agent runs Claude Code only under its --root directories, and never in bypass mode unless told.

The server is not trusted here: whatever directory or permission mode a command
names, the agent on the user's machine decides.
"""

import os

import pytest

from agent_client.__main__ import parse_args
from agent_client.workdirs import WorkdirRefused, normalise_roots, resolve_workdir
from app import db
from app.models import Project

# -- resolve_workdir, unit by unit ---------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    """root/ with project/ and links; outside/ next to it; root-evil/ sharing root's prefix."""
    root, outside, evil = tmp_path / "root", tmp_path / "outside", tmp_path / "root-evil"
    for path in (root / "project" / "sub", outside, evil):
        path.mkdir(parents=True)
    (root / "escape").symlink_to(outside)
    (root / "inner").symlink_to(root / "project")
    (root / "loop").symlink_to(root / "loop")
    (root / "file.txt").write_text("x")
    (tmp_path / "root-link").symlink_to(root)
    return tmp_path


def roots_of(tree):
    return normalise_roots([str(tree / "root")])


@pytest.mark.parametrize(
    "path", ["root", "root/project", "root/project/sub", "root/project/../project", "root/inner"]
)
def test_directories_under_a_root_are_allowed_as_their_real_path(tree, path):
    resolved = resolve_workdir(str(tree / path), roots_of(tree))

    assert resolved == os.path.realpath(tree / path)
    assert resolved.startswith(str(tree / "root"))


@pytest.mark.parametrize(
    "path",
    [
        "outside",
        "root-evil",  # shares the root's name as a prefix, is not under it
        "root/..",
        "root/project/../../outside",
        "root/escape",  # a symlink inside the root pointing out of it
        "root/escape/",
        "root/loop",
        "root/file.txt",
        "root/missing",
    ],
)
def test_paths_outside_the_roots_or_not_directories_are_refused(tree, path):
    with pytest.raises(WorkdirRefused):
        resolve_workdir(str(tree / path), roots_of(tree))


@pytest.mark.parametrize("path", ["root/project", "project", ".", ""])
def test_relative_paths_are_refused(tree, path, monkeypatch):
    monkeypatch.chdir(tree)  # they would resolve against wherever the agent was started
    with pytest.raises(WorkdirRefused):
        resolve_workdir(path, roots_of(tree))


def test_a_path_with_a_nul_byte_is_refused(tree):
    with pytest.raises(WorkdirRefused):
        resolve_workdir(str(tree / "root") + "/pro\x00ject", roots_of(tree))


def test_a_symlinked_root_is_resolved_once_and_its_real_tree_is_allowed(tree):
    roots = normalise_roots([str(tree / "root-link")])

    assert roots == [os.path.realpath(tree / "root")]
    assert resolve_workdir(str(tree / "root-link" / "project"), roots) == os.path.realpath(
        tree / "root/project"
    )
    with pytest.raises(WorkdirRefused):
        resolve_workdir(str(tree / "root-link" / "escape"), roots)


def test_tilde_means_the_agents_home_and_is_checked_like_any_path(tree, monkeypatch):
    monkeypatch.setenv("HOME", str(tree / "root"))
    roots = normalise_roots([str(tree / "root")])

    assert resolve_workdir("~/project", roots) == os.path.realpath(tree / "root/project")
    with pytest.raises(WorkdirRefused):
        resolve_workdir("~/escape", roots)


def test_a_root_that_is_not_a_directory_stops_the_agent_at_start(tree):
    with pytest.raises(WorkdirRefused):
        normalise_roots([str(tree / "root" / "file.txt")])


def test_bypass_permissions_is_off_unless_the_flag_is_given():
    assert parse_args(["--server", "http://x", "--token", "t"]).allow_bypass_permissions is False
    given = parse_args(["--server", "http://x", "--token", "t", "--allow-bypass-permissions"])
    assert given.allow_bypass_permissions is True


# -- a real agent process, real Claude Code (against the stand-in model) --------------------------


def set_project(app, project_id, **values):
    """Change a project behind the relay's back, as a compromised or buggy server could."""
    with app.app_context():
        project = db.session.get(Project, project_id)
        for key, value in values.items():
            setattr(project, key, value)
        db.session.commit()


@pytest.fixture
def confined(live, tmp_path):
    """An agent whose only root is root/, with outside/ beside it and a symlink root/escape -> outside."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    (root / "escape").symlink_to(outside)
    seed = live.seed()
    set_project(live.app, seed.project_id, path=str(root))
    return seed, root, outside


@pytest.mark.parametrize("where", ["escape", "../outside", "/"])
def test_the_agent_refuses_a_directory_outside_its_root(live, confined, where):
    seed, root, outside = confined
    live.agent(seed, roots=[str(root)])
    browser = live.browser(seed)
    browser.agent_online(seed.agent_id)
    directory = where if where == "/" else str(root / where)

    reply = browser.run(seed.project_id, "write: planted.txt owned", workingDirectory=directory)
    final = browser.wait_final(reply["commandId"])

    assert final["status"] == "error" and final["error"]["code"] == "forbidden", final
    assert "outside" in final["error"]["message"]
    assert os.listdir(outside) == []
    # The control: a command in the root itself runs.
    ok = browser.run(seed.project_id, "say: fine here")
    assert browser.wait_final(ok["commandId"])["status"] == "complete"


def test_the_agent_refuses_bypass_permissions_without_its_flag(live, confined):
    seed, root, _ = confined
    set_project(live.app, seed.project_id, permission_mode="bypassPermissions")
    live.agent(seed, roots=[str(root)])
    browser = live.browser(seed)
    browser.agent_online(seed.agent_id)

    reply = browser.run(seed.project_id, "write: bypassed.txt no one asked")
    final = browser.wait_final(reply["commandId"])

    assert final["status"] == "error" and "does not allow" in final["error"]["message"], final
    assert not (root / "bypassed.txt").exists()


def test_with_its_flag_the_agent_runs_in_bypass_mode(live, confined):
    """The control for the refusal above: the flag, and only the flag, lets bypass through."""
    seed, root, _ = confined
    set_project(live.app, seed.project_id, permission_mode="bypassPermissions")
    live.agent(seed, roots=[str(root)], extra_args=["--allow-bypass-permissions"])
    browser = live.browser(seed)
    browser.agent_online(seed.agent_id)

    reply = browser.run(seed.project_id, "write: bypassed.txt no one asked")
    final = browser.wait_final(reply["commandId"])

    assert browser.permissions == []
    if os.geteuid() == 0:
        # Claude Code itself refuses bypass mode to root: the agent did pass the mode on.
        assert final["status"] == "error" and "dangerously-skip-permissions" in final["error"]["message"]
        return
    assert final["status"] == "complete", final
    assert (root / "bypassed.txt").read_text().strip() == "no one asked"
