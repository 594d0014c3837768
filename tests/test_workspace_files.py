"""The agent's file answers, unit by unit: the path rule, confinement, listings, reading, answer sizes.

Real directories, files and symlinks in temp folders; no process is started.
"""

import json
import os

import pytest

from agent_client import files
from agent_client.workdirs import normalise_roots
from agent_client.workspace import Workspace
from protocol import ProtocolError, error_reply, messages
from protocol.schemas import load_answer
from protocol.workspace import MAX_TEXT_BYTES, PathRefused, path_parts

# -- the lexical rule (protocol/workspace.py), shared by server and agent ---------------------------


@pytest.mark.parametrize(
    "path, parts",
    [
        ("", []),
        (".", []),
        ("src", ["src"]),
        ("src/app/", ["src", "app"]),
        ("./src//app/./x.py", ["src", "app", "x.py"]),
        ("a..b/..c/c..", ["a..b", "..c", "c.."]),  # dots inside names are names
        ("~/x", ["~", "x"]),  # no home expansion: a directory named ~
    ],
)
def test_relative_paths_give_their_components(path, parts):
    assert path_parts(path) == parts


@pytest.mark.parametrize(
    "path",
    ["..", "../x", "a/../../x", "a/..", "/etc/passwd", "/", "a\x00b", "a\ufffdb", "src/../.."],
)
def test_paths_that_could_leave_the_project_are_refused(path):
    with pytest.raises(PathRefused):
        path_parts(path)


# -- confinement on disk ------------------------------------------------------------------------


@pytest.fixture
def tree(tmp_path):
    """root/project with files, and ways out of it: outside/ next to root, symlinks to it."""
    root, project, outside = tmp_path / "root", tmp_path / "root" / "project", tmp_path / "outside"
    (project / "src" / "deep").mkdir(parents=True)
    outside.mkdir()
    (outside / "secret.txt").write_text("outside secret")
    (root / "sibling.txt").write_text("in the root, not the project")
    (project / "README.md").write_text("# Hello\n")
    (project / "src" / "main.py").write_text("print('hi')\n")
    (project / "src" / "deep" / "leaf.txt").write_text("leaf")
    (project / "link-to-secret").symlink_to(outside / "secret.txt")
    (project / "link-to-outside").symlink_to(outside)
    (project / "link-to-sibling").symlink_to(root / "sibling.txt")  # in the root, out of the project
    (project / "link-inside").symlink_to(project / "src" / "main.py")
    (project / "dir-link-inside").symlink_to(project / "src")
    (project / "loop").symlink_to(project / "loop")
    (tmp_path / "root-link").symlink_to(root)
    return tmp_path


def project_of(tree):
    project, _ = files.project_dir(str(tree / "root" / "project"), normalise_roots([str(tree / "root")]))
    return project


def refused(code, call, *args):
    with pytest.raises(files.Refused) as caught:
        call(*args)
    assert caught.value.code == code, caught.value.message
    return caught.value.message


@pytest.mark.parametrize(
    "path",
    [
        "../sibling.txt",
        "../../outside/secret.txt",
        "/etc/passwd",
        "/tmp",
        "link-to-secret",  # a symlink to a file outside
        "link-to-outside",  # a symlink to a directory outside
        "link-to-outside/secret.txt",
        "link-to-sibling",  # out of the project, even though inside the root
        "src/../../sibling.txt",
        "a\x00b",
    ],
)
def test_every_way_out_of_the_project_is_forbidden_for_reading_and_listing(tree, path):
    project = project_of(tree)
    refused("forbidden", files.read_file, project, path)
    refused("forbidden", files.list_files, project, path)


def test_symlinks_that_stay_inside_the_project_are_followed(tree):
    project = project_of(tree)
    assert files.read_file(project, "link-inside")["content"] == "print('hi')\n"
    listing = files.list_files(project, "dir-link-inside")
    assert [entry["name"] for entry in listing["entries"]] == ["deep", "main.py"]


def test_missing_paths_and_very_long_names_are_not_found(tree):
    project = project_of(tree)
    refused("not_found", files.read_file, project, "nope.txt")
    refused("not_found", files.list_files, project, "nope/deeper")
    refused("not_found", files.read_file, project, "README.md/inside")  # a file is no directory
    refused("not_found", files.read_file, project, "x" * 300)  # a name longer than any allowed
    refused("not_found", files.list_files, project, "/".join(["y" * 250] * 16))  # 4,000 characters


def test_a_symlink_loop_is_refused_not_followed_forever(tree):
    refused("forbidden", files.read_file, project_of(tree), "loop")


def test_the_project_must_lie_under_a_root_and_exist(tree):
    roots = normalise_roots([str(tree / "root")])
    refused("forbidden", files.project_dir, str(tree / "outside"), roots)
    refused("forbidden", files.project_dir, str(tree / "root" / "project" / "link-to-outside"), roots)
    refused("forbidden", files.project_dir, "root/project", roots)  # relative
    refused("not_found", files.project_dir, str(tree / "root" / "gone"), roots)


def test_a_project_reached_through_a_symlinked_root_is_served_by_its_real_path(tree):
    roots = normalise_roots([str(tree / "root-link")])
    project, root = files.project_dir(str(tree / "root-link" / "project"), roots)
    assert project == str((tree / "root" / "project").resolve()) and root == str((tree / "root").resolve())
    assert files.read_file(project, "README.md")["content"] == "# Hello\n"
    refused("forbidden", files.read_file, project, "link-to-secret")


def test_a_directory_cannot_be_read_nor_a_file_listed_nor_a_fifo_opened(tree):
    project = project_of(tree)
    os.mkfifo(tree / "root" / "project" / "pipe")
    refused("invalid_message", files.read_file, project, "src")
    refused("invalid_message", files.list_files, project, "README.md")
    refused("forbidden", files.read_file, project, "pipe")  # would block a reader for ever


# -- listings ------------------------------------------------------------------------------------


def test_a_listing_has_directories_first_then_by_name_with_kind_size_and_utc_time(tree):
    project = project_of(tree)
    (tree / "root" / "project" / "b.txt").write_bytes(b"12345")
    os.utime(tree / "root" / "project" / "b.txt", (0, 86400 * 365))
    listing = files.list_files(project, "")

    names = [(entry["kind"], entry["name"]) for entry in listing["entries"]]
    assert names == [
        ("dir", "src"),
        ("file", "b.txt"),
        ("link", "dir-link-inside"),
        ("link", "link-inside"),
        ("link", "link-to-outside"),
        ("link", "link-to-secret"),
        ("link", "link-to-sibling"),
        ("link", "loop"),
        ("file", "README.md"),
    ]
    b_txt = next(entry for entry in listing["entries"] if entry["name"] == "b.txt")
    assert b_txt == {"name": "b.txt", "kind": "file", "size": 5, "modified": "1971-01-01T00:00:00Z"}
    assert listing["path"] == "" and listing["truncated"] is False and listing["total"] == 9
    assert load_answer("list_files", listing) == listing


def test_a_huge_directory_is_cut_and_says_so(tree, monkeypatch):
    big = tree / "root" / "project" / "big"
    big.mkdir()
    for n in range(2_500):
        (big / f"f{n:05d}").touch()
    (big / "zz-dir").mkdir()
    listing = files.list_files(project_of(tree), "big")

    assert len(listing["entries"]) == files.MAX_ENTRIES and listing["truncated"] is True
    assert listing["total"] == 2_501
    assert listing["entries"][0]["name"] == "zz-dir"  # directories first, even when cut
    assert listing["entries"][1]["name"] == "f00000"


def test_names_that_are_not_utf8_are_listed_with_a_replacement_character(tree):
    project = project_of(tree)
    os.close(os.open(os.path.join(os.fsencode(project), b"caf\xe9.txt"), os.O_CREAT | os.O_WRONLY))
    names = [entry["name"] for entry in files.list_files(project, "")["entries"]]
    assert "caf\ufffd.txt" in names
    json.dumps(names)  # and the answer is plain JSON


# -- reading ----------------------------------------------------------------------------------------


def test_a_text_file_is_read_whole(tree):
    project = project_of(tree)
    (tree / "root" / "project" / "uni.txt").write_text("héllo wörld ✓\n", encoding="utf-8")
    answer = files.read_file(project, "./uni.txt")
    assert answer == {
        "ok": True,
        "path": "uni.txt",
        "size": len("héllo wörld ✓\n".encode()),
        "binary": False,
        "truncated": False,
        "content": "héllo wörld ✓\n",
    }
    assert load_answer("read_file", answer) == answer


@pytest.mark.parametrize(
    "data", [b"PNG\x00\x01\x02 rest", b"\xff\xfe\xfa not utf-8 at all", b"ok text then \xc3\x28 invalid"]
)
def test_binary_files_are_said_binary_with_no_content(tree, data):
    (tree / "root" / "project" / "blob.bin").write_bytes(data)
    answer = files.read_file(project_of(tree), "blob.bin")
    assert answer["binary"] is True and answer["content"] == "" and answer["size"] == len(data)


def test_a_fifty_megabyte_file_is_cut_at_one_mebibyte_without_reading_it_all(tree):
    path = tree / "root" / "project" / "huge.log"
    line = "0123456789abcdef" * 4 + "\n"
    with open(path, "w") as file:
        file.write(line * (MAX_TEXT_BYTES // len(line) + 10))
        file.truncate(50 * 1024 * 1024)  # the rest is a hole of NUL bytes, after the first MiB
    answer = files.read_file(project_of(tree), "huge.log")

    assert answer["size"] == 50 * 1024 * 1024
    assert answer["truncated"] is True and answer["binary"] is False
    assert len(answer["content"].encode()) == MAX_TEXT_BYTES
    assert answer["content"].startswith(line * 3)


def test_a_cut_never_splits_a_character(tree):
    path = tree / "root" / "project" / "wide.txt"
    path.write_text("a" + "€" * (MAX_TEXT_BYTES // 3 + 5), encoding="utf-8")  # 3-byte characters
    answer = files.read_file(project_of(tree), "wide.txt")
    assert answer["truncated"] is True and answer["binary"] is False
    content = answer["content"].encode()
    assert len(content) <= MAX_TEXT_BYTES and len(content) > MAX_TEXT_BYTES - 3
    assert answer["content"].endswith("€")


# -- answer sizes --------------------------------------------------------------------------------------


def test_an_answer_whose_json_would_not_fit_a_message_is_cut_until_it_does():
    content = "\x01" * MAX_TEXT_BYTES  # six bytes of JSON each
    answer = {"ok": True, "path": "x", "size": MAX_TEXT_BYTES, "binary": False, "truncated": False}
    answer["content"] = content
    fitted = files.fit(dict(answer), budget=2_000_000)
    assert len(json.dumps(fitted)) <= 2_000_000 and fitted["truncated"] is True
    assert content.startswith(fitted["content"]) and fitted["content"]


def test_the_worst_text_of_one_mebibyte_fits_the_real_budget_uncut():
    answer = {"ok": True, "path": "x", "content": "\x01" * MAX_TEXT_BYTES, "truncated": False}
    assert files.fit(dict(answer))["truncated"] is False


# -- the service: validation, errors, a stuck disk --------------------------------------------------------


def test_the_service_answers_each_request_and_refuses_a_malformed_one(tree):
    workspace = Workspace(normalise_roots([str(tree / "root")]))
    try:
        project = str(tree / "root" / "project")
        read = workspace.answer(messages.workspace_request("r1", project, "read_file", "README.md"))
        assert read["ok"] and read["content"] == "# Hello\n"
        outside = workspace.answer(messages.workspace_request("r2", str(tree / "outside"), "list_files"))
        assert outside["error"]["code"] == "forbidden"
        bad = workspace.answer({"type": "workspace_request", "requestId": "r3", "op": "rm", "path": ""})
        assert bad["error"]["code"] == "invalid_message" and "op" in bad["error"]["message"]
        assert load_answer("read_file", bad) == bad  # the server takes it as an answer
    finally:
        workspace.close()


def test_a_request_that_takes_too_long_is_answered_with_an_error_in_time(tree):
    workspace = Workspace(normalise_roots([str(tree / "root")]), workers=1, timeout=0.2)
    os.mkfifo(tree / "root" / "project" / "stuck")
    try:
        # A worker stuck in a read that never returns (here: a fifo opened by hand).
        stuck = workspace._pool.submit(open, tree / "root" / "project" / "stuck", "rb")
        request = messages.workspace_request("r1", str(tree / "root" / "project"), "read_file", "README.md")
        answer = workspace.answer(request)
        assert answer["ok"] is False and answer["error"]["code"] == "internal"
        assert "within 0.2 s" in answer["error"]["message"]
    finally:
        with open(tree / "root" / "project" / "stuck", "wb"):
            pass  # let the stuck worker go
        stuck.result(5).close()
        workspace.close()


def test_a_file_swapped_between_the_check_and_the_open_is_refused(tree, monkeypatch):
    project = project_of(tree)
    real_stat = files._stat

    def swap_after_check(real, relative):
        checked = real_stat(real, relative)
        os.replace(tree / "root" / "project" / "src" / "main.py", real)  # another file in its place
        return checked

    monkeypatch.setattr(files, "_stat", swap_after_check)
    assert "changed while it was opened" in refused("forbidden", files.read_file, project, "README.md")


def test_an_open_file_found_outside_the_project_is_refused(tree, monkeypatch):
    monkeypatch.setattr(files, "_where", lambda fd: str(tree / "outside" / "secret.txt"))
    refused("forbidden", files.read_file, project_of(tree), "README.md")
    refused("forbidden", files.list_files, project_of(tree), "src")


# -- the server's check of an agent's answer -------------------------------------------------------


ENTRY = {"name": "a.txt", "kind": "file", "size": 1, "modified": "2026-01-01T00:00:00Z"}
CHANGE = {"path": "a.txt", "status": "modified", "additions": 1, "deletions": None}


@pytest.mark.parametrize(
    "op, answer",
    [
        (
            "list_files",
            {"ok": True, "path": "", "truncated": False, "total": 1, "entries": [{**ENTRY, "kind": "pipe"}]},
        ),
        (
            "list_files",
            {"ok": True, "path": "", "truncated": False, "total": 1, "entries": [{**ENTRY, "size": True}]},
        ),
        (
            "list_files",
            {"ok": True, "path": "", "truncated": False, "total": 1, "entries": [{**ENTRY, "size": -1}]},
        ),
        (
            "list_files",
            {"ok": True, "path": "", "truncated": False, "total": 1, "entries": [{**ENTRY, "x": 1}]},
        ),
        ("list_files", {"ok": True, "path": "", "truncated": False, "total": 1, "entries": ["a.txt"]}),
        ("list_files", {"ok": True, "path": "", "truncated": "no", "total": 1, "entries": []}),
        ("read_file", {"ok": True, "path": "a", "size": 1, "binary": False, "truncated": False}),
        ("git_changes", {"ok": True, "isRepo": True, "files": [{**CHANGE, "status": "renamed"}]}),
        ("git_changes", {"ok": True, "isRepo": True, "files": [{**CHANGE, "additions": "1"}]}),
        ("git_changes", {"ok": False, "error": {"code": "not_found"}}),
        ("git_changes", "not an object"),
    ],
)
def test_a_malformed_answer_from_an_agent_is_refused_as_internal(op, answer):
    with pytest.raises(ProtocolError) as caught:
        load_answer(op, answer)
    assert caught.value.code == "internal"


def test_an_agents_error_answer_passes_with_an_unknown_code_made_internal():
    assert load_answer("read_file", error_reply("not_found", "gone")) == error_reply("not_found", "gone")
    assert load_answer("read_file", error_reply("weird", "?"))["error"]["code"] == "internal"
    changes = {"ok": True, "isRepo": True, "branch": None, "files": [CHANGE], "diff": "", "truncated": False}
    assert load_answer("git_changes", changes) == changes
