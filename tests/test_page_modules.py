"""The pages' ES modules: every module the chat page imports is preloaded by its template, and
every import resolves to a file (a typo would only show in a browser otherwise)."""

import os
import re

from tests.test_pages import log_in

JS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "static", "js")
IMPORT = re.compile(r"""^import\s[^"']*["'](\.{1,2}/[^"']+)["'];""", re.MULTILINE)


def module_graph(entry):
    """Paths (relative to static/js) of `entry` and every module it imports, directly or not."""
    seen, todo = set(), [entry]
    while todo:
        path = todo.pop()
        if path in seen:
            continue
        seen.add(path)
        with open(os.path.join(JS, path)) as file:
            source = file.read()
        for spec in IMPORT.findall(source):
            target = os.path.normpath(os.path.join(os.path.dirname(path), spec))
            assert os.path.exists(os.path.join(JS, target)), f"{path} imports {spec}: no such file"
            todo.append(target)
    return seen


def test_every_module_of_the_chat_page_is_preloaded(client, seed):
    page = log_in(client, seed).get(f"/projects/{seed.project_id}").get_data(as_text=True)
    preloaded = set(re.findall(r'<link rel="modulepreload" href="/static/js/([^"]+)"', page))
    assert preloaded == module_graph("chat/main.js")
    assert '<script type="module" src="/static/js/chat/main.js"></script>' in page


def test_dashboard_module_imports_resolve():
    assert "lib/connection.js" in module_graph("dashboard.js")
