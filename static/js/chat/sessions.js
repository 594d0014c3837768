/* The sessions sidebar: the project's sessions, the open one marked, its state kept live. */
import { el, fetchJSON, relativeTime } from "../lib/dom.js";

export class SessionList {
  constructor({ root, list, toggle, close, projectId }) {
    Object.assign(this, { root, list, toggle, close, projectId });
    this.current = null;
    this.timer = null;
    // The server renders the sessions' times as timestamps: say them the way a refresh does.
    for (const node of list.querySelectorAll(".session-time[data-updated-at]")) {
      node.textContent = relativeTime(node.dataset.updatedAt);
    }
  }

  refreshSoon(delay = 300) {
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.refresh(), delay);
  }

  async refresh() {
    let sessions;
    try {
      sessions = await fetchJSON(`/api/projects/${encodeURIComponent(this.projectId)}/sessions`);
    } catch (error) {
      return;
    }
    const items = sessions.map((s) =>
      el(
        "li",
        {},
        el(
          "a",
          { href: `?session=${encodeURIComponent(s.id)}`, dataset: { sessionId: s.id } },
          el("span", { class: "session-title", text: s.title }),
          el(
            "span",
            { class: "session-meta" },
            el("span", { class: "session-state", dataset: { state: s.state }, text: s.state }),
            el("span", { class: "session-time", text: relativeTime(s.updatedAt) }),
          ),
        ),
      ),
    );
    if (!items.length) items.push(el("li", { class: "muted empty", text: "No sessions yet." }));
    this.list.replaceChildren(...items);
    this.mark(this.current);
  }

  /** aria-current on the open session's link. */
  mark(sessionId) {
    this.current = sessionId;
    for (const link of this.list.querySelectorAll("a[data-session-id]")) {
      if (link.dataset.sessionId === sessionId) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  /** The list shows the state of each session's last command: keep the open one's live. */
  showState(sessionId, state) {
    const link = this.list.querySelector(`a[data-session-id="${CSS.escape(sessionId)}"]`);
    const label = link && link.querySelector(".session-state");
    if (label) {
      label.dataset.state = state;
      label.textContent = state;
    }
  }

  /** The phone's full-screen sessions panel: focus moves into it and back to its button. */
  setOpen(open) {
    const wasOpen = this.root.classList.contains("sessions-open");
    this.root.classList.toggle("sessions-open", open);
    this.toggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open && !wasOpen) this.close.focus();
    else if (!open && wasOpen && this.root.querySelector(".sessions").contains(document.activeElement)) {
      this.toggle.focus();
    }
  }

  get isOpen() {
    return this.root.classList.contains("sessions-open");
  }
}
