/* Tether dashboard: what needs you, live.
 *
 * [data-testid=needs-you] lists the sessions that wait for the user (a pending
 * permission request), [data-testid=running] those that run; each item has
 * data-session-id. The server renders both; `session_activity` events (to the
 * user's room, for every session of every agent) keep them true, and after each
 * (re)connect the page asks GET /api/needs-you for the whole picture again.
 */
import { EVENTS } from "./generated/protocol.js";
import { connect } from "./lib/connection.js";
import { el, fetchJSON } from "./lib/dom.js";

const root = document.querySelector("[data-testid=attention]");
if (root) follow(root);

function follow(root) {
  const lists = {
    waiting: root.querySelector("[data-testid=needs-you]"),
    running: root.querySelector("[data-testid=running]"),
  };
  const sessions = new Map(); // sessionId -> its last session_activity
  let duringRefresh = null; // events that arrived while the whole picture was being fetched

  /** "for 45 s", "for 3 min", "for 2 h" since an ISO time. */
  function howLong(iso) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return "";
    const seconds = Math.max(0, Math.round((Date.now() - then) / 1000));
    if (seconds < 60) return `for ${seconds} s`;
    if (seconds < 3600) return `for ${Math.floor(seconds / 60)} min`;
    return `for ${Math.floor(seconds / 3600)} h ${Math.floor((seconds % 3600) / 60)} min`;
  }

  function tick() {
    for (const node of root.querySelectorAll(".activity-since[data-since]")) {
      node.textContent = howLong(node.dataset.since);
    }
  }

  function item(activity) {
    const url = `/projects/${encodeURIComponent(activity.projectId)}?session=${encodeURIComponent(activity.sessionId)}`;
    return el(
      "li",
      { class: "activity-item", dataset: { sessionId: activity.sessionId, state: activity.state } },
      el("a", { href: url, class: "activity-title", text: activity.title }),
      el("span", { class: "activity-where muted", text: `${activity.projectName} · ${activity.agentName}` }),
      el(
        "span",
        { class: "activity-what" },
        activity.state === "waiting" ? `Allow ${activity.toolName || "a tool"}? ` : null,
        el("span", { class: "activity-since", dataset: { since: activity.since || "" } }),
      ),
    );
  }

  function render() {
    const ordered = [...sessions.values()].sort((a, b) => (a.since || "").localeCompare(b.since || ""));
    for (const [state, list] of Object.entries(lists)) {
      const items = ordered.filter((activity) => activity.state === state).map(item);
      list.replaceChildren(...items);
      const empty = root.querySelector(`[data-empty-for="${list.dataset.testid}"]`);
      if (empty) empty.hidden = items.length > 0;
    }
    tick();
  }

  function apply(activity) {
    if (!activity || typeof activity.sessionId !== "string") return;
    if (activity.state === "waiting" || activity.state === "running") sessions.set(activity.sessionId, activity);
    else sessions.delete(activity.sessionId);
  }

  function onActivity(activity) {
    if (duringRefresh) duringRefresh.push(activity);
    apply(activity);
    render();
  }

  async function refresh() {
    duringRefresh = [];
    try {
      const all = await fetchJSON("/api/needs-you");
      sessions.clear();
      for (const activity of all) apply(activity);
      for (const activity of duringRefresh) apply(activity); // newer than the fetch, most likely
      render();
    } catch (error) {
      // Keep what is shown; the next event or reconnect brings it up to date.
    } finally {
      duringRefresh = null;
    }
  }

  tick();
  setInterval(tick, 15000);
  const socket = connect();
  if (socket) {
    socket.on("connect", refresh);
    socket.on(EVENTS.SESSION_ACTIVITY, onActivity);
  }
}
