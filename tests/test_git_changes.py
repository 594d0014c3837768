"""git_changes on the agent: git's output parsed (unit), and real git on real repositories (integration)."""

import os
import stat
import subprocess

import pytest

from agent_client import files, git_changes
from agent_client.git_changes import change_status, parse_numstat, parse_status, untracked_diff
from protocol.schemas import load_answer
from protocol.workspace import MAX_TEXT_BYTES

# -- parsing (unit) ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "code, status",
    [
        (" M", "modified"),
        ("M ", "modified"),
        ("MM", "modified"),
        (" T", "modified"),
        ("A ", "added"),
        ("AM", "added"),
        ("AD", None),  # added to the index, then deleted: in neither HEAD nor the tree
        (" D", "deleted"),
        ("D ", "deleted"),
        ("MD", "deleted"),
        ("??", "untracked"),
        ("UU", "conflicted"),
        ("AA", "conflicted"),
        ("DU", "conflicted"),
        ("!!", None),
    ],
)
def test_porcelain_codes_map_to_the_contracts_statuses(code, status):
    assert change_status(code) == status


def test_status_output_is_parsed_and_the_projects_prefix_taken_off():
    output = b" M sub/a.txt\x00?? sub/new dir/x y.txt\x00D  sub/gone.txt\x00AD sub/ghost\x00UU sub/c.txt\x00"
    assert parse_status(output, "sub/") == {
        "a.txt": "modified",
        "new dir/x y.txt": "untracked",
        "gone.txt": "deleted",
        "c.txt": "conflicted",
    }


def test_a_status_output_cut_short_drops_its_partial_last_entry():
    assert parse_status(b" M a.txt\x00?? b.t") == {"a.txt": "modified"}
    assert parse_status(b"") == {}


def test_numstat_output_gives_counts_and_none_for_binary_files():
    output = b"3\t1\tsrc/a.py\x00-\t-\timage.png\x000\t12\tnon-\xc3\xa9t\xc3\xa9.txt\x00\x001\t2\tpar"
    assert parse_numstat(output) == {
        "src/a.py": (3, 1),
        "image.png": (None, None),
        "non-été.txt": (0, 12),
    }


def test_an_untracked_text_file_becomes_a_new_file_diff_with_its_line_count(tmp_path):
    (tmp_path / "notes.txt").write_text("one\ntwo\nthree")
    diff, lines, cut = untracked_diff(str(tmp_path), "notes.txt", MAX_TEXT_BYTES)
    assert diff == (
        "diff --git a/notes.txt b/notes.txt\nnew file mode 100644\n--- /dev/null\n+++ b/notes.txt\n"
        "@@ -0,0 +1,3 @@\n+one\n+two\n+three\n\\ No newline at end of file\n"
    )
    assert (lines, cut) == (3, False)


def test_untracked_binaries_empty_files_and_symlinks_are_shown_as_git_would(tmp_path):
    (tmp_path / "blob").write_bytes(b"\x00\x01")
    (tmp_path / "empty").touch()
    (tmp_path / "run.sh").write_text("echo\n")
    (tmp_path / "run.sh").chmod(0o755)
    (tmp_path / "link").symlink_to("/somewhere/else")
    project = str(tmp_path)
    assert untracked_diff(project, "blob", 10_000)[0].endswith("Binary files /dev/null and b/blob differ\n")
    assert untracked_diff(project, "empty", 10_000) == (
        "diff --git a/empty b/empty\nnew file mode 100644\n",
        0,
        False,
    )
    assert "new file mode 100755\n" in untracked_diff(project, "run.sh", 10_000)[0]
    link, lines, _ = untracked_diff(project, "link", 10_000)
    assert "new file mode 120000\n" in link and "+/somewhere/else\n" in link and lines == 1


def test_an_untracked_symlink_is_never_followed_out_of_the_project(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("outside secret")
    project = tmp_path / "project"
    (project / "dir").mkdir(parents=True)
    (project / "escape").symlink_to(tmp_path)
    (project / "link").symlink_to(secret)
    assert "outside secret" not in untracked_diff(str(project), "link", 10_000)[0]
    assert untracked_diff(str(project), "escape/secret.txt", 10_000) == ("", None, False)


def test_an_untracked_file_over_the_budget_is_cut_and_said_so(tmp_path):
    (tmp_path / "big.txt").write_text("line\n" * 1000)
    diff, lines, cut = untracked_diff(str(tmp_path), "big.txt", 300)
    assert len(diff.encode()) <= 300 and cut is True and lines is None
    assert untracked_diff(str(tmp_path), "big.txt", 0) == ("", None, True)


# -- real git (integration: each answer runs git several times) -----------------------------------


def git(cwd, *args):
    env = {**os.environ, "GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t"}
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    subprocess.run(["git", *args], cwd=cwd, env=env, check=True, capture_output=True)


@pytest.fixture
def repo(tmp_path):
    """root/repo with a commit; the agent's root is root/."""
    path = tmp_path / "root" / "repo"
    (path / "src").mkdir(parents=True)
    git(path, "init", "-q", "-b", "main")
    (path / "src" / "app.py").write_text("a = 1\nb = 2\n")
    (path / "README.md").write_text("# repo\n")
    (path / "gone.txt").write_text("bye\n")
    (path / "logo.bin").write_bytes(b"\x00\x01\x02")
    git(path, "add", ".")
    git(path, "commit", "-q", "-m", "first")
    return path


def changes(project, root=None, **kwargs):
    root = root or os.path.dirname(project)
    answer = git_changes.changes(str(project), str(root), **kwargs)
    assert load_answer("git_changes", answer) == answer
    return answer


@pytest.mark.integration
def test_changes_against_head_list_each_file_and_the_whole_diff(repo):
    (repo / "src" / "app.py").write_text("a = 1\nb = 3\nc = 4\n")
    (repo / "gone.txt").unlink()
    (repo / "new.txt").write_text("fresh\n")
    (repo / "staged.txt").write_text("in the index\n")
    git(repo, "add", "staged.txt")
    (repo / "logo.bin").write_bytes(b"\x00\x09\x09")

    answer = changes(repo)

    assert answer["isRepo"] is True and answer["branch"] == "main" and answer["truncated"] is False
    assert answer["files"] == [
        {"path": "gone.txt", "status": "deleted", "additions": 0, "deletions": 1},
        {"path": "logo.bin", "status": "modified", "additions": None, "deletions": None},
        {"path": "new.txt", "status": "untracked", "additions": 1, "deletions": 0},
        {"path": "src/app.py", "status": "modified", "additions": 2, "deletions": 1},
        {"path": "staged.txt", "status": "added", "additions": 1, "deletions": 0},
    ]
    diff = answer["diff"]
    assert "--- a/src/app.py\n+++ b/src/app.py\n" in diff and "-b = 2\n+b = 3\n+c = 4\n" in diff
    assert "+++ b/staged.txt\n" in diff and "deleted file mode" in diff
    assert "diff --git a/new.txt b/new.txt\nnew file mode 100644\n" in diff and "+fresh\n" in diff


@pytest.mark.integration
def test_a_project_in_a_subdirectory_sees_its_own_part_with_paths_relative_to_it(repo):
    (repo / "src" / "app.py").write_text("changed\n")
    (repo / "src" / "extra.py").write_text("x\n")
    (repo / "README.md").write_text("changed outside the project\n")

    answer = changes(repo / "src", root=repo.parent)

    assert [(f["path"], f["status"]) for f in answer["files"]] == [
        ("app.py", "modified"),
        ("extra.py", "untracked"),
    ]
    assert "README" not in answer["diff"] and "diff --git a/app.py b/app.py" in answer["diff"]
    # list_files and read_file take the same paths.
    assert files.read_file(str(repo / "src"), answer["files"][0]["path"])["content"] == "changed\n"


@pytest.mark.integration
def test_a_directory_that_is_no_repository_says_so(tmp_path):
    (tmp_path / "root" / "plain").mkdir(parents=True)
    assert changes(tmp_path / "root" / "plain") == {"ok": True, "isRepo": False, "files": []}


@pytest.mark.integration
def test_no_repository_above_the_agents_root_is_looked_at(repo):
    inner_root = repo / "src"  # the agent may use src/ only; the repository lies above it
    assert changes(inner_root, root=inner_root)["isRepo"] is False


@pytest.mark.integration
def test_a_repository_without_a_commit_shows_everything_as_added(tmp_path):
    path = tmp_path / "root" / "fresh"
    path.mkdir(parents=True)
    git(path, "init", "-q", "-b", "trunk")
    (path / "a.txt").write_text("a\n")
    git(path, "add", "a.txt")
    (path / "b.txt").write_text("b\n")
    answer = changes(path)
    assert answer["branch"] == "trunk"
    assert [(f["path"], f["status"]) for f in answer["files"]] == [("a.txt", "added"), ("b.txt", "untracked")]


@pytest.mark.integration
def test_a_detached_head_has_no_branch(repo):
    git(repo, "checkout", "-q", "--detach")
    assert changes(repo)["branch"] is None


@pytest.mark.integration
def test_thousands_of_changes_are_cut_and_say_so(repo):
    many = repo / "many"
    many.mkdir()
    for n in range(3_000):
        (many / f"file{n:04d}.txt").write_text(f"line {n}\n" * 100)
    answer = changes(repo)
    assert answer["truncated"] is True
    assert len(answer["files"]) == git_changes.MAX_CHANGED_FILES
    assert answer["files"][0]["path"] == "many/file0000.txt"
    assert len(answer["diff"].encode()) <= MAX_TEXT_BYTES
    assert answer["diff"].startswith("diff --git a/many/file0000.txt")


@pytest.mark.integration
def test_a_diff_over_one_mebibyte_is_cut_and_says_so(repo):
    (repo / "src" / "app.py").write_text("x = 'é'\n" * 300_000)  # 2.7 MB of changed lines
    answer = changes(repo)
    assert answer["truncated"] is True and answer["files"][0]["additions"] == 300_000
    assert MAX_TEXT_BYTES - 4 <= len(answer["diff"].encode()) <= MAX_TEXT_BYTES


@pytest.mark.integration
def test_the_agents_git_variables_hooks_external_diff_and_textconv_are_not_used(repo, tmp_path, monkeypatch):
    marker = tmp_path / "ran"
    script = tmp_path / "tool.sh"
    script.write_text(f"#!/bin/sh\necho ran >> {marker}\n")
    script.chmod(script.stat().st_mode | stat.S_IEXEC)
    git(repo, "config", "diff.external", str(script))
    git(repo, "config", "core.fsmonitor", str(script))
    git(repo, "config", "diff.shout.textconv", str(script))
    git(repo, "config", "core.pager", str(script))
    (repo / ".gitattributes").write_text("*.py diff=shout\n")
    (repo / "src" / "app.py").write_text("a = 1\n")
    monkeypatch.setenv("GIT_DIR", str(tmp_path / "elsewhere"))  # the agent's own environment
    monkeypatch.setenv("GIT_EXTERNAL_DIFF", str(script))

    answer = changes(repo)

    assert "-b = 2\n" in answer["diff"]  # git's own diff, not the tools'
    assert not marker.exists()


@pytest.mark.integration
def test_a_git_that_hangs_is_killed_and_the_answer_is_an_error(repo, tmp_path):
    fake = tmp_path / "fake-git"
    fake.write_text("#!/bin/sh\nsleep 171.25 &\nwait\n")  # a child of its own, as hooks have
    fake.chmod(0o755)
    with pytest.raises(files.Refused) as caught:
        git_changes.changes(str(repo), str(repo.parent), git=str(fake), timeout=1.0)
    assert caught.value.code == "internal" and "within 1 s" in caught.value.message
    for pattern in (str(fake), "sleep 171.25"):  # git and what it started are gone
        assert subprocess.run(["pgrep", "-f", pattern], capture_output=True).stdout == b""


@pytest.mark.integration
def test_no_git_installed_is_a_clear_error(repo):
    with pytest.raises(files.Refused) as caught:
        git_changes.changes(str(repo), str(repo.parent), git="/nonexistent/git")
    assert caught.value.code == "internal" and "could not be run" in caught.value.message
