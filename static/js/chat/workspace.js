/* The project's workspace beside the conversation: its files (a tree read lazily, a viewer) and
 * its changes against git's HEAD (a list with badges and counts, each file's diff).
 *
 * Everything is asked of the agent through the server (list_files, read_file, git_changes on
 * /web; docs/protocol.md, "Workspace"). An error is said plainly where the answer would be;
 * agent_offline is looked at again when the agent comes back (agentOnline()). The changes are
 * asked again when a command ends or a file is written (changed()), while the panel shows them.
 * Below 760 px the panel is a full-screen sheet, like the sessions panel.
 */
import { EVENTS } from "../generated/protocol.js";
import { emit } from "../lib/connection.js";
import { el, errorText, formatBytes } from "../lib/dom.js";

const HIGHLIGHT_LIMIT = 200_000; // characters of a file highlighted; longer ones are shown plain
const WORKSPACE_TIMEOUT_MS = 30_000; // the server gives up on the agent after 15 s
const REFRESH_DELAY_MS = 300; // a burst of edits asks for the changes once
const STATUS_BADGES = { modified: "M", added: "A", deleted: "D", untracked: "U", conflicted: "C" };

// What each error code means for the reader (the server's message says the details).
const ERROR_LEADS = {
  forbidden: "Not allowed",
  not_found: "Not found",
  agent_offline: "The agent is offline: this loads again when it reconnects",
  internal: "The agent could not answer",
  rate_limited: "Too many requests at once: try again in a moment",
  timeout: "No answer from the server",
};

function errorNode(error, retry) {
  const code = (error && error.code) || "internal";
  const lead = ERROR_LEADS[code] || "Could not load";
  const message = errorText(error, "");
  return el(
    "div",
    { class: "workspace-error", role: "alert", "data-testid": "workspace-error", dataset: { code } },
    el("span", { text: message && code !== "agent_offline" ? `${lead}: ${message}` : `${lead}.` }),
    retry && code !== "agent_offline" ? el("button", { type: "button", class: "small", onclick: retry }, "Try again") : null,
  );
}

/** The highlight.js language for a file name, if it knows one (by extension or whole name). */
function languageOf(path) {
  const { hljs } = window;
  if (!hljs) return null;
  const name = path.split("/").pop().toLowerCase();
  const special = { dockerfile: "dockerfile", makefile: "makefile" };
  if (special[name]) return hljs.getLanguage(special[name]) ? special[name] : null;
  const dot = name.lastIndexOf(".");
  const ext = dot > 0 ? name.slice(dot + 1) : "";
  return ext && hljs.getLanguage(ext) ? ext : null;
}

/** A <code> with the text highlighted through the vendored highlight.js when it can be. */
export function highlightedCode(text, path) {
  const code = el("code", { class: "hljs" });
  const language = languageOf(path);
  if (language && text.length <= HIGHLIGHT_LIMIT) {
    // hljs escapes the text it returns: this HTML holds only its spans.
    code.innerHTML = window.hljs.highlight(text, { language, ignoreIllegals: true }).value;
    code.classList.add(`language-${language}`);
  } else {
    code.textContent = text;
  }
  return code;
}

/** Unified diff text cut into each file's part, by its `diff --git a/P b/P` header. */
export function splitDiff(diff, paths) {
  const parts = new Map();
  if (!diff) return parts;
  const chunks = diff.split(/^(?=diff --git )/m);
  const byHeader = new Map(paths.map((path) => [`diff --git a/${path} b/${path}`, path]));
  for (const chunk of chunks) {
    const header = chunk.slice(0, chunk.indexOf("\n") === -1 ? chunk.length : chunk.indexOf("\n"));
    let path = byHeader.get(header);
    if (!path) {
      // Quoted or unusual names: the +++ (or ---, for a deletion) line names the file too.
      const named = /^\+\+\+ b\/(.*)$/m.exec(chunk) || /^--- a\/(.*)$/m.exec(chunk);
      path = named && paths.includes(named[1]) ? named[1] : null;
    }
    if (path) parts.set(path, (parts.get(path) || "") + chunk);
  }
  return parts;
}

/** One file's diff, each line coloured by what it is. */
function diffNode(text) {
  const lines = text.replace(/\n$/, "").split("\n");
  const kind = (line) => {
    if (line.startsWith("+++") || line.startsWith("---") || line.startsWith("diff --git") || /^(index|new file|deleted file|similarity|old mode|new mode|Binary files)/.test(line)) return "meta";
    if (line.startsWith("@@")) return "hunk";
    if (line.startsWith("+")) return "add";
    if (line.startsWith("-")) return "del";
    return "context";
  };
  return el(
    "pre",
    { class: "diff", "data-testid": "diff" },
    el("code", {}, lines.map((line) => el("span", { class: `diff-line diff-${kind(line)}` }, line || " "))),
  );
}

export class Workspace {
  constructor({ root, socket, projectId, agent }) {
    Object.assign(this, { socket, projectId, agent });
    const $ = (id) => root.querySelector(`[data-testid=${id}]`);
    this.root = root;
    this.panel = $("workspace");
    this.dom = {
      openFiles: $("open-files"),
      openChanges: $("open-changes"),
      close: $("close-workspace"),
      refresh: $("refresh-workspace"),
      tabs: { files: $("files-tab"), changes: $("changes-tab") },
      panes: { files: $("files-panel"), changes: $("changes-panel") },
      tree: $("file-tree"),
      viewer: $("file-view"),
      changes: $("changes"),
    };
    this.tab = "files";
    this.treeLoaded = false;
    this.expanded = new Set([""]); // directories open in the tree ("" is the project's)
    this.openFile = null;
    this.changesStale = true;
    this.changesBusy = false;
    this.changesAgain = false;
    this.changesTimer = null;
    this.waiting = []; // what to ask again once the agent is back
    this.diffOpen = new Set(); // paths whose diff the reader opened (kept across refreshes)
    this.wire();
  }

  wire() {
    const { dom } = this;
    dom.openFiles.addEventListener("click", () => this.toggle("files"));
    dom.openChanges.addEventListener("click", () => this.toggle("changes"));
    dom.close.addEventListener("click", () => this.setOpen(false));
    dom.refresh.addEventListener("click", () => (this.tab === "files" ? this.reloadTree() : this.loadChanges()));
    for (const [tab, button] of Object.entries(dom.tabs)) button.addEventListener("click", () => this.show(tab));
    dom.tree.addEventListener("click", (event) => {
      const entry = event.target.closest("[data-testid=file-entry]");
      if (entry) this.entryClicked(entry);
    });
  }

  get isOpen() {
    return this.root.classList.contains("workspace-open");
  }

  /** The header's Files / Changes button: opens that tab, or closes the panel if it shows it. */
  toggle(tab) {
    if (this.isOpen && this.tab === tab) this.setOpen(false);
    else {
      this.setOpen(true);
      this.show(tab);
    }
  }

  setOpen(open) {
    const was = this.isOpen;
    this.root.classList.toggle("workspace-open", open);
    this.panel.hidden = !open;
    this.dom.openFiles.setAttribute("aria-expanded", open && this.tab === "files" ? "true" : "false");
    this.dom.openChanges.setAttribute("aria-expanded", open && this.tab === "changes" ? "true" : "false");
    if (open && !was) this.dom.tabs[this.tab].focus();
    else if (!open && was && this.panel.contains(document.activeElement)) {
      (this.tab === "files" ? this.dom.openFiles : this.dom.openChanges).focus();
    }
  }

  show(tab) {
    this.tab = tab;
    for (const [name, button] of Object.entries(this.dom.tabs)) {
      button.setAttribute("aria-selected", name === tab ? "true" : "false");
      this.dom.panes[name].hidden = name !== tab;
    }
    this.setOpen(true);
    if (tab === "files" && !this.treeLoaded) this.reloadTree();
    if (tab === "changes" && this.changesStale) this.loadChanges();
  }

  /** The agent came back online: ask again what it could not answer. */
  agentOnline() {
    const waiting = this.waiting;
    this.waiting = [];
    for (const retry of waiting) retry();
  }

  /** A command ended or wrote a file: the changes (and the open directories) may differ now. */
  changed() {
    this.changesStale = true;
    if (!this.isOpen) return;
    clearTimeout(this.changesTimer);
    this.changesTimer = setTimeout(() => {
      if (this.tab === "changes") this.loadChanges();
      else if (this.treeLoaded) this.reloadTree({ quiet: true });
    }, REFRESH_DELAY_MS);
  }

  /** Ask the agent; resolves with the ack ({ok: false, error} for every failure, a lost socket too). */
  async ask(event, fields) {
    if (!this.socket || !this.socket.connected) {
      return { ok: false, error: { code: "timeout", message: "not connected to the server" } };
    }
    try {
      return await emit(this.socket, event, { projectId: this.projectId, ...fields }, WORKSPACE_TIMEOUT_MS);
    } catch (error) {
      return { ok: false, error: { code: "timeout", message: "the server did not answer" } };
    }
  }

  /** An error answer: shown in `box`; an offline agent's is asked again when it reconnects. */
  failed(box, error, retry) {
    box.replaceChildren(errorNode(error, retry));
    if (error && error.code === "agent_offline") this.waiting.push(retry);
  }

  // -- files ---------------------------------------------------------------------------------

  async reloadTree({ quiet = false } = {}) {
    this.treeLoaded = true;
    const box = this.dom.tree;
    if (!quiet || !box.firstChild) box.replaceChildren(el("p", { class: "muted workspace-note", text: "Loading…" }));
    const list = await this.listDir("", box);
    if (list) box.replaceChildren(list);
  }

  /** A directory's entries as a list (its open subdirectories listed too), or null after showing an error. */
  async listDir(path, box) {
    const ack = await this.ask(EVENTS.LIST_FILES, { path });
    if (!ack.ok) {
      if (path === "") this.treeLoaded = ack.error && ack.error.code === "agent_offline";
      this.failed(box, ack.error, () => (path === "" ? this.reloadTree() : this.reopenDir(path)));
      return null;
    }
    const items = await Promise.all(ack.entries.map((entry) => this.entryNode(path, entry)));
    const list = el("ul", { class: "tree-list", role: path === "" ? "tree" : "group", "aria-label": path === "" ? "Project files" : null }, items);
    if (!ack.entries.length) list.append(el("li", { class: "muted tree-empty", text: "Empty folder" }));
    if (ack.truncated) {
      list.append(el("li", { class: "muted tree-empty", "data-testid": "tree-truncated", text: `The first ${ack.entries.length} of ${ack.total} entries.` }));
    }
    return list;
  }

  async entryNode(parent, entry) {
    const path = parent ? `${parent}/${entry.name}` : entry.name;
    const dir = entry.kind === "dir";
    const open = dir && this.expanded.has(path);
    const button = el(
      "button",
      {
        type: "button",
        class: `tree-entry kind-${entry.kind}`,
        role: "treeitem",
        "data-testid": "file-entry",
        "aria-expanded": dir ? String(open) : null,
        "aria-current": this.openFile === path ? "true" : null,
        title: dir ? path : `${path} · ${formatBytes(entry.size)}`,
        dataset: { path, kind: entry.kind },
      },
      el("span", { class: "tree-icon", "aria-hidden": "true", text: dir ? (open ? "▾" : "▸") : entry.kind === "link" ? "↪" : "·" }),
      el("span", { class: "tree-name", text: entry.name }),
      dir ? null : el("span", { class: "tree-size muted", text: formatBytes(entry.size) }),
    );
    const item = el("li", { role: "none" }, button);
    if (open) {
      const children = el("div", { class: "tree-children" });
      item.append(children);
      const list = await this.listDir(path, children);
      if (list) children.replaceChildren(list);
    }
    return item;
  }

  async entryClicked(button) {
    const { path, kind } = button.dataset;
    if (kind === "dir") await this.toggleDir(button);
    else await this.readFile(path);
  }

  async toggleDir(button) {
    const { path } = button.dataset;
    const item = button.parentElement;
    const icon = button.querySelector(".tree-icon");
    if (this.expanded.has(path)) {
      this.expanded.delete(path);
      button.setAttribute("aria-expanded", "false");
      icon.textContent = "▸";
      item.querySelector(".tree-children")?.remove();
      return;
    }
    this.expanded.add(path);
    button.setAttribute("aria-expanded", "true");
    icon.textContent = "▾";
    const children = el("div", { class: "tree-children" }, el("p", { class: "muted workspace-note", text: "Loading…" }));
    item.append(children);
    const list = await this.listDir(path, children);
    if (list && children.isConnected) children.replaceChildren(list);
  }

  /** List an open directory again (after its error, once the agent is back). */
  async reopenDir(path) {
    const button = this.dom.tree.querySelector(`[data-testid=file-entry][data-path="${CSS.escape(path)}"]`);
    const children = button && button.parentElement.querySelector(".tree-children");
    if (!children) return;
    const list = await this.listDir(path, children);
    if (list) children.replaceChildren(list);
  }

  async readFile(path) {
    const viewer = this.dom.viewer;
    this.openFile = path;
    for (const entry of this.dom.tree.querySelectorAll("[data-testid=file-entry]")) {
      if (entry.dataset.path === path) entry.setAttribute("aria-current", "true");
      else entry.removeAttribute("aria-current");
    }
    viewer.hidden = false;
    viewer.dataset.path = path;
    const head = el("div", { class: "file-head" }, el("span", { class: "file-path", "data-testid": "file-path", text: path }));
    viewer.replaceChildren(head, el("p", { class: "muted workspace-note", text: "Loading…" }));
    const ack = await this.ask(EVENTS.READ_FILE, { path });
    if (this.openFile !== path) return; // another file was opened meanwhile
    if (!ack.ok) {
      const box = el("div", {});
      viewer.replaceChildren(head, box);
      this.failed(box, ack.error, () => this.openFile === path && this.readFile(path));
      return;
    }
    head.append(el("span", { class: "muted file-size", text: formatBytes(ack.size) }));
    const body = [];
    if (ack.binary) {
      body.push(el("p", { class: "workspace-note", "data-testid": "file-binary", text: `A binary file of ${formatBytes(ack.size)}: not shown.` }));
    } else {
      if (ack.truncated) {
        const shown = new TextEncoder().encode(ack.content).length;
        body.push(
          el("p", { class: "workspace-note warn", "data-testid": "file-truncated", text: `Cut: the first ${formatBytes(shown)} of ${formatBytes(ack.size)} (${ack.size} bytes).` }),
        );
      }
      body.push(el("pre", { class: "file-content", "data-testid": "file-content" }, highlightedCode(ack.content, path)));
    }
    viewer.replaceChildren(head, ...body);
  }

  // -- changes ---------------------------------------------------------------------------------

  /** git_changes, one request at a time (a change meanwhile asks once more after it). */
  async loadChanges() {
    clearTimeout(this.changesTimer);
    if (this.changesBusy) {
      this.changesAgain = true;
      return;
    }
    this.changesBusy = true;
    this.changesStale = false;
    const box = this.dom.changes;
    box.setAttribute("aria-busy", "true");
    if (!box.firstChild) box.replaceChildren(el("p", { class: "muted workspace-note", text: "Loading…" }));
    try {
      const ack = await this.ask(EVENTS.GIT_CHANGES, {});
      if (ack.ok) this.showChanges(ack);
      else {
        this.changesStale = true;
        this.failed(box, ack.error, () => this.loadChanges());
      }
    } finally {
      this.changesBusy = false;
      box.setAttribute("aria-busy", "false");
    }
    if (this.changesAgain) {
      this.changesAgain = false;
      this.loadChanges();
    }
  }

  showChanges(ack) {
    const box = this.dom.changes;
    box.dataset.loaded = String((Number(box.dataset.loaded) || 0) + 1);
    if (!ack.isRepo) {
      box.replaceChildren(el("p", { class: "workspace-note", "data-testid": "changes-empty", text: "Not a git repository: there are no changes to show." }));
      return;
    }
    const files = ack.files || [];
    const parts = splitDiff(ack.diff || "", files.map((f) => f.path));
    const totals = files.reduce((sum, f) => [sum[0] + (f.additions || 0), sum[1] + (f.deletions || 0)], [0, 0]);
    const summary = el(
      "p",
      { class: "changes-summary", "data-testid": "changes-summary" },
      ack.branch ? el("span", { class: "badge", text: ack.branch }) : el("span", { class: "badge", text: "detached HEAD" }),
      files.length ? ` ${files.length} file${files.length === 1 ? "" : "s"} changed ` : " No changes against HEAD.",
      files.length ? el("span", { class: "count-add", text: `+${totals[0]}` }) : null,
      files.length ? " " : null,
      files.length ? el("span", { class: "count-del", text: `−${totals[1]}` }) : null,
    );
    const notes = ack.truncated ? [el("p", { class: "workspace-note warn", "data-testid": "changes-truncated", text: "The list or the diff is cut: it was too big to send whole." })] : [];
    const list = el("div", { class: "change-list" }, files.map((file) => this.changeNode(file, parts.get(file.path))));
    box.replaceChildren(summary, ...notes, list);
  }

  changeNode(file, diff) {
    const counts = (n, sign, cls) => el("span", { class: cls, text: n === null || n === undefined ? "" : `${sign}${n}` });
    const details = el(
      "details",
      { class: "change", "data-testid": "change-file", dataset: { path: file.path, status: file.status } },
      el(
        "summary",
        {},
        el("span", { class: `status-badge status-${file.status}`, title: file.status, "data-testid": "change-status", text: STATUS_BADGES[file.status] || "?" }),
        el("span", { class: "change-path", text: file.path }),
        el(
          "span",
          { class: "change-counts", "data-testid": "change-counts" },
          file.additions === null && file.deletions === null ? el("span", { class: "muted", text: "binary" }) : [counts(file.additions, "+", "count-add"), counts(file.deletions, "−", "count-del")],
        ),
      ),
    );
    // A diff is laid out only when opened: a big change set stays cheap.
    const fill = () => {
      if (details.open && details.childElementCount === 1) {
        details.append(diff ? diffNode(diff) : el("p", { class: "muted workspace-note", text: "No diff to show (binary, or past the cut)." }));
      }
      if (details.open) this.diffOpen.add(file.path);
      else this.diffOpen.delete(file.path);
    };
    details.addEventListener("toggle", fill);
    if (this.diffOpen.has(file.path)) {
      details.open = true;
      fill();
    }
    return details;
  }
}
