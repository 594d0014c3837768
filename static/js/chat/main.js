/* Tether chat page: one project, one session at a time (ES module, the page's entry).
 *
 * Every server message, REST load and local action becomes an action of the
 * store's one reducer (store.js); the changes it returns go to the module that
 * owns them: the conversation (view.js), permission prompts (permissions.js),
 * the sessions list (sessions.js), and this controller for the rest
 * (subscribing, the URL, notifications). docs/web.md describes the page.
 *
 * The stream is numbered by seq. The page subscribes from the last seq it holds:
 * after opening a session (its last turns come by REST, with the seq they are
 * whole up to), after a gap, after every reconnect. The server sends a
 * command_state for every move of a command, so nothing is polled; one REST
 * load of the latest states follows each subscribe, for moves made while this
 * page was not subscribed.
 */
import { EVENTS } from "../generated/protocol.js";
import { connect, emit } from "../lib/connection.js";
import { errorText, postJSON } from "../lib/dom.js";
import { notify } from "./alerts.js";
import { Attachments } from "./attachments.js";
import { Composer, ReadOnlyComposer } from "./composer.js";
import { OlderTurns, fetchTurns } from "./history.js";
import { warmUp } from "./markdown.js";
import { Permissions } from "./permissions.js";
import { ModelPicker, SlashCompletion, rememberedOffer } from "./picker.js";
import { SessionList } from "./sessions.js";
import { activeTurn, createState, reduce } from "./store.js";
import { ConversationView } from "./view.js";
import { Workspace } from "./workspace.js";

const STATES_AFTER_SUBSCRIBE = 5; // turns whose state is fetched again after each subscribe
const WARM_UP_DELAY_MS = 200; // after the page has settled

class ChatPage {
  constructor(root) {
    const $ = (id) => root.querySelector(`[data-testid=${id}]`);
    this.root = root;
    this.dom = {
      messages: $("messages"),
      scroller: root.querySelector(".scroller"),
      emptyState: $("empty-state"),
      form: $("composer"),
      prompt: $("prompt"),
      send: $("send"),
      stop: $("stop"),
      status: $("composer-status"),
      sendError: $("send-error"),
      agentStatus: $("agent-status"),
      demoBadge: $("demo-badge"),
      announcer: $("announcer"),
      older: $("load-older"),
    };
    this.projectId = root.dataset.projectId;
    this.agentId = root.dataset.agentId;
    this.agent = {
      name: root.dataset.agentName || "the agent",
      online: this.dom.agentStatus ? this.dom.agentStatus.dataset.agentStatus === "online" : true,
    };
    this.state = createState();
    this.view = 0; // bumped whenever another session is opened; stale callbacks check it
    this.ready = false; // the open session's last turns are loaded: subscribing may start
    this.resyncing = false;
    this.socket = connect();
    this.conversation = new ConversationView({ ...this.dom, shared: root.dataset.shared === "true" });
    this.sessions = new SessionList({
      root,
      list: $("session-list"),
      toggle: root.querySelector(".sessions-toggle"),
      close: root.querySelector(".sessions-close"),
      projectId: this.projectId,
    });
    // A viewer follows the project's sessions: no composer, no Stop, no Allow or Deny.
    this.readOnly = root.dataset.role === "viewer";
    this.permissions = new Permissions({
      socket: this.socket,
      dom: this.dom,
      readOnly: this.readOnly,
      onAnswered: (requestId) => this.dispatch({ type: "permission_resolved", message: { requestId } }),
    });
    this.composer = this.readOnly ? new ReadOnlyComposer({ dom: this.dom }) : this.makeComposer();
    // The project's files and changes: for its owner and operators (a viewer is refused them).
    this.workspace = $("workspace")
      ? new Workspace({ root, socket: this.socket, projectId: this.projectId, agent: this.agent })
      : null;
    this.older = new OlderTurns({ scroller: this.dom.scroller, box: this.dom.older, load: () => this.loadOlder() });
    this.statesTimer = null;
    this.listen();
    this.wire();
  }

  makeComposer() {
    const $ = (id) => this.root.querySelector(`[data-testid=${id}]`);
    this.attachments = new Attachments({
      form: this.dom.form,
      button: $("attach"),
      input: $("attach-input"),
      list: $("attachments"),
      error: $("attachment-error"),
      onChange: () => this.composer && this.composer.update(),
    });
    this.model = new ModelPicker({ select: $("model-picker") });
    this.completion = new SlashCompletion({ prompt: this.dom.prompt, list: $("slash-commands") });
    const remembered = rememberedOffer.load(this.agentId);
    if (remembered) this.dispatch({ type: "offered", offered: remembered });
    return new Composer({
      dom: this.dom,
      socket: this.socket,
      page: this,
      projectId: this.projectId,
      agent: this.agent,
      attachments: this.attachments,
      model: this.model,
      plan: $("plan-toggle"),
      completion: this.completion,
    });
  }

  /** The one way anything changes: reduce, then hand each change to its owner. */
  dispatch(action) {
    const changes = reduce(this.state, action);
    for (const change of changes) {
      this.conversation.apply(change);
      this.permissions.apply(change, this.conversation);
      this.react(change);
    }
    if (this.composer) this.composer.update();
    return changes;
  }

  react(change) {
    const { turn } = change;
    switch (change.op) {
      case "gap":
        if (!this.resyncing) this.subscribe();
        break;
      case "unknown": // a command sent from elsewhere: fetch its prompt
        this.refreshStatesSoon();
        break;
      case "session":
        this.setUrl(change.sessionId, "replace");
        this.sessions.mark(change.sessionId);
        break;
      case "state":
        if (turn.commandId && this.conversation.isLast(turn)) this.sessions.showState(this.state.sessionId, turn.state);
        break;
      case "offered":
        this.model?.offer(change.offered);
        this.completion?.offer(change.offered);
        if (change.remember !== false) rememberedOffer.save(this.agentId, change.offered);
        break;
      case "model":
        this.model?.setSessionModel(change.model);
        break;
      case "files_changed":
        this.workspace?.changed();
        break;
      case "finished":
        this.workspace?.changed();
        this.sessions.refreshSoon();
        notify(turn.state === "done" ? "Claude Code finished" : `Command ${turn.state}`, turn.prompt || "", this.state.sessionId);
        break;
      default:
        break;
    }
  }

  listen() {
    const { socket } = this;
    if (!socket) return;
    const on = (event, valid, type) =>
      socket.on(event, (message) => {
        if (message && typeof message === "object" && valid(message)) this.dispatch({ type, message });
      });
    const ids = (m, ...keys) => keys.every((key) => typeof m[key] === "string");
    on(EVENTS.COMMAND_RESULT, (m) => Number.isInteger(m.seq) && ids(m, "commandId", "response", "status"), "result");
    on(EVENTS.COMMAND_STATE, (m) => ids(m, "commandId", "state"), "command_state");
    on(EVENTS.PERMISSION_REQUEST, (m) => ids(m, "commandId", "requestId", "toolName"), "permission_request");
    on(EVENTS.PERMISSION_RESOLVED, (m) => typeof m.requestId === "string", "permission_resolved");
    socket.on(EVENTS.AGENT_STATUS, (message) => this.agentStatus(message));
    socket.on("connect", () => {
      // Catch up on whatever happened while we were away; the subscribe re-sends pending permissions.
      this.dispatch({ type: "permissions_cleared" });
      this.resyncing = false;
      this.subscribe();
      this.composer.resend();
      this.sessions.refreshSoon(500);
    });
  }

  agentStatus(message) {
    if (!message || message.agentId !== this.agentId) return;
    this.agent.online = Boolean(message.online);
    if (message.name) this.agent.name = message.name;
    // An agent that connects after the page loaded says here whether it is the demo model.
    if (this.agent.online && typeof message.demo === "boolean") if (this.dom.demoBadge) this.dom.demoBadge.hidden = !message.demo;
    const word = this.agent.online ? "online" : "offline";
    this.dom.agentStatus.dataset.agentStatus = word;
    this.dom.agentStatus.querySelector(".label").textContent = `${this.agent.name} ${word}`;
    // "agent laptop is offline" is no longer true: the text is still in the prompt to send.
    if (this.agent.online && this.dom.sendError.dataset.code === "agent_offline") this.composer.hideError();
    if (this.agent.online) this.workspace?.agentOnline();
    this.composer.update();
  }

  // -- following a session --------------------------------------------------------------

  /** Show a session (or a blank new one, for null): its last turns, then its stream from there. */
  async openSession(sessionId, { history = "push" } = {}) {
    if (this.state.sessionId && this.state.sessionId !== sessionId) this.unsubscribe(this.state.sessionId);
    this.view += 1;
    const view = this.view;
    this.ready = false;
    this.resyncing = false;
    this.dispatch({ type: "open", sessionId });
    this.model?.opened(sessionId);
    this.older.set(false);
    this.composer.hideError();
    this.setUrl(sessionId, history);
    this.sessions.mark(sessionId);
    if (!sessionId) {
      this.ready = true;
      // Nothing to show yet: the first answer need not pay for compiling the Markdown engine.
      setTimeout(warmUp, WARM_UP_DELAY_MS);
      return;
    }
    let page = null;
    try {
      const loading = fetchTurns(sessionId);
      warmUp(); // while the turns are on their way
      page = await loading;
    } catch (error) {
      // Not fatal: subscribing from 0 replays the whole session instead (or says it is not ours).
    }
    if (view !== this.view) return;
    if (page) this.dispatch({ type: "load", turns: page.turns, lastSeq: page.lastSeq });
    this.ready = true;
    this.conversation.scrollToBottom();
    if (page) this.older.set(page.older);
    await this.subscribe();
  }

  /** A page of turns above the first one shown; resolves with whether there are more (null if stale). */
  async loadOlder() {
    const { sessionId, first } = this.state;
    const view = this.view;
    if (!sessionId || !first) return false;
    const page = await fetchTurns(sessionId, { before: first });
    if (view !== this.view) return null;
    const keep = this.conversation.position(this.state.turns.get(first));
    this.dispatch({ type: "load", turns: page.turns, older: true });
    this.conversation.restore(keep);
    return page.older;
  }

  async subscribe() {
    const { sessionId } = this.state;
    if (!sessionId || !this.ready || !this.socket || !this.socket.connected) return;
    const view = this.view;
    this.resyncing = true;
    let ack;
    try {
      ack = await emit(this.socket, EVENTS.SUBSCRIBE, { sessionId, afterSeq: this.state.lastSeq });
    } catch (error) {
      this.resyncing = false;
      return; // disconnected: the reconnect subscribes again
    }
    if (view !== this.view) return;
    this.resyncing = false;
    if (ack.ok) {
      this.refreshStatesSoon(0);
      return;
    }
    if (ack.error && ack.error.code === "not_found") {
      this.composer.showError("That session does not exist (or is not yours). Start a new one.");
      this.openSession(null, { history: "replace" });
    } else {
      this.composer.showError(errorText(ack.error, "Could not open the session."));
    }
  }

  unsubscribe(sessionId) {
    if (sessionId && this.socket && this.socket.connected) {
      emit(this.socket, EVENTS.UNSUBSCRIBE, { sessionId }).catch(() => {});
    }
  }

  refreshStatesSoon(delay = 300) {
    clearTimeout(this.statesTimer);
    this.statesTimer = setTimeout(() => this.refreshStates(), delay);
  }

  /** The latest turns' prompts and states (no results): moves made while we were not subscribed. */
  async refreshStates() {
    const { sessionId } = this.state;
    const view = this.view;
    if (!sessionId) return;
    let page;
    try {
      page = await fetchTurns(sessionId, { limit: STATES_AFTER_SUBSCRIBE, results: false });
    } catch (error) {
      return;
    }
    if (view === this.view) this.dispatch({ type: "load", turns: page.turns });
  }

  scrollToBottom() {
    this.conversation.scrollToBottom();
  }

  setUrl(sessionId, mode) {
    if (mode === "none") return;
    const url = new URL(window.location.href);
    if (sessionId) url.searchParams.set("session", sessionId);
    else url.searchParams.delete("session");
    if (url.href === window.location.href) return;
    if (mode === "replace") window.history.replaceState({ sessionId }, "", url);
    else window.history.pushState({ sessionId }, "", url);
  }

  // -- the rest of the page ----------------------------------------------------------------

  wire() {
    const { root, sessions } = this;
    document.addEventListener("keydown", (event) => {
      if (event.key !== "Escape" || event.defaultPrevented) return;
      if (sessions.isOpen) sessions.setOpen(false);
      else if (this.workspace?.isOpen) this.workspace.setOpen(false);
      else if (activeTurn(this.state)) this.composer.stop();
    });
    root.querySelector("[data-testid=new-session]").addEventListener("click", () => {
      sessions.setOpen(false);
      this.openSession(null);
      this.dom.prompt?.focus();
    });
    sessions.list.addEventListener("click", (event) => {
      const link = event.target.closest("a[data-session-id]");
      if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
      event.preventDefault();
      sessions.setOpen(false);
      if (link.dataset.sessionId !== this.state.sessionId) this.openSession(link.dataset.sessionId);
    });
    sessions.toggle.addEventListener("click", () => sessions.setOpen(!sessions.isOpen));
    sessions.close.addEventListener("click", () => sessions.setOpen(false));
    window.addEventListener("popstate", () => {
      const id = new URL(window.location.href).searchParams.get("session");
      if (id !== this.state.sessionId) this.openSession(id, { history: "none" });
    });
    // Permission mode of the project: saved at once, used from the next command on.
    const mode = root.querySelector("[data-testid=permission-mode]");
    if (mode) {
      mode.addEventListener("change", async () => {
        const url = `/api/projects/${encodeURIComponent(this.projectId)}/settings`;
        const response = await postJSON(url, { permissionMode: mode.value });
        mode.dataset.saved = response.ok ? mode.value : "error";
      });
    }
  }

  start() {
    const initial = new URL(window.location.href).searchParams.get("session");
    this.openSession(initial, { history: "none" });
    if (!initial) this.dom.prompt?.focus();
  }
}

const root = document.querySelector(".chat[data-project-id]");
if (root) new ChatPage(root).start();
