/* Tether chat page: one project, one session at a time.
 *
 * The server numbers every command_result of a session with seq (1, 2, 3, ...).
 * The page keeps the last seq it applied: a result at or below it is a
 * duplicate and dropped; one beyond lastSeq + 1 reveals a gap, and the page
 * subscribes again from lastSeq so that the server replays what is missing.
 * After every reconnect the page subscribes again from lastSeq as well.
 *
 * Each command is a "turn": the prompt, then the answer (Markdown text and tool
 * calls in stream order), pending permission prompts, and a footer with the
 * delivery state and the closing line of the result event.
 */
(function () {
  "use strict";

  const { el } = window.Tether;

  const ACK_TIMEOUT_MS = 5000; // resend execute_command (same clientMessageId) after this
  const MAX_SEND_ATTEMPTS = 6;
  const ACTIVE = new Set(["queued", "sent", "running"]);
  const FINAL = new Set(["done", "failed", "stopped"]);
  const RANK = { queued: 0, sent: 1, running: 2, done: 3, failed: 3, stopped: 3 };
  const HINT = "Enter to send · Shift+Enter for a new line";

  const root = document.querySelector(".chat[data-project-id]");
  if (!root) return;

  const dom = {
    root,
    messages: root.querySelector("[data-testid=messages]"),
    scroller: root.querySelector(".scroller"),
    emptyState: root.querySelector("[data-testid=empty-state]"),
    form: root.querySelector("[data-testid=composer]"),
    prompt: root.querySelector("[data-testid=prompt]"),
    send: root.querySelector("[data-testid=send]"),
    stop: root.querySelector("[data-testid=stop]"),
    status: root.querySelector("[data-testid=composer-status]"),
    sendError: root.querySelector("[data-testid=send-error]"),
    sessionList: root.querySelector("[data-testid=session-list]"),
    newSession: root.querySelector("[data-testid=new-session]"),
    sessionsToggle: root.querySelector(".sessions-toggle"),
    sessionsClose: root.querySelector(".sessions-close"),
    agentStatus: root.querySelector("[data-testid=agent-status]"),
    announcer: root.querySelector("[data-testid=announcer]"),
  };

  const state = {
    projectId: root.dataset.projectId,
    agentId: root.dataset.agentId,
    agentName: root.dataset.agentName || "the agent",
    agentOnline: dom.agentStatus ? dom.agentStatus.dataset.agentStatus === "online" : true,
    connection: "connecting",
    refused: false,
    view: 0, // bumped whenever another session is opened; stale callbacks check it
    sessionId: null,
    lastSeq: 0,
    ready: false, // history fetched for the current session; subscribing may start
    resyncing: false,
    turns: new Map(), // commandId (or a temporary id before the ack) -> turn
    pendingSends: new Map(), // clientMessageId -> send awaiting its ack
    early: new Map(), // sessionId -> results that came before the ack of a new session
    permissions: new Map(), // requestId -> element
    stopping: false,
  };

  const socket = window.Tether.connect();

  // -- Markdown ----------------------------------------------------------------

  const markdown = createMarkdownRenderer();

  function createMarkdownRenderer() {
    const hasMarked = window.marked && typeof window.marked.parse === "function";
    const hasPurify = window.DOMPurify && typeof window.DOMPurify.sanitize === "function";
    if (!hasMarked || !hasPurify) return null;
    const escape = (text) =>
      text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
    // Raw HTML in an answer is shown as text: it is usually code being discussed.
    window.marked.use({ gfm: true, breaks: false, renderer: { html: ({ text }) => escape(text) } });
    window.DOMPurify.addHook("afterSanitizeAttributes", (node) => {
      if (node.tagName === "A" && node.getAttribute("href")) {
        node.setAttribute("target", "_blank");
        node.setAttribute("rel", "noopener noreferrer");
      }
    });
    if (window.hljs) window.hljs.configure({ ignoreUnescapedHTML: true });
    return {
      render(text) {
        const html = window.marked.parse(text);
        return window.DOMPurify.sanitize(html, {
          FORBID_TAGS: ["style", "img", "form", "button", "textarea", "select", "iframe"],
          FORBID_ATTR: ["style"],
        });
      },
    };
  }

  function highlight(container) {
    if (!window.hljs) return;
    for (const code of container.querySelectorAll("pre code")) {
      if (code.textContent.length > 50000) continue;
      const lang = [...code.classList].find((c) => c.startsWith("language-"));
      if (lang && !window.hljs.getLanguage(lang.slice(9))) {
        code.classList.remove(lang); // unknown language: plain, without a console warning
        code.classList.add("hljs");
        continue;
      }
      window.hljs.highlightElement(code);
    }
  }

  // Re-render dirty text segments at most once per animation frame. A hidden
  // tab gets no frames, so a timer takes over there.
  const dirty = new Set();
  let renderScheduled = false;

  function scheduleRender() {
    if (renderScheduled) return;
    renderScheduled = true;
    if (document.hidden) setTimeout(flushRender, 250);
    else requestAnimationFrame(flushRender);
  }

  function flushRender() {
    renderScheduled = false;
    const stick = nearBottom();
    for (const segment of dirty) renderSegment(segment);
    dirty.clear();
    if (stick) scrollToBottom();
  }

  function renderSegment(segment) {
    if (markdown) {
      segment.node.innerHTML = markdown.render(segment.text);
      highlight(segment.node);
    } else {
      segment.node.textContent = segment.text;
    }
  }

  function nearBottom() {
    const s = dom.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }

  function scrollToBottom() {
    dom.scroller.scrollTop = dom.scroller.scrollHeight;
  }

  // Follow the bottom while the reader is there: whatever grows the conversation
  // (a closing line, an error, a permission prompt, a tool result) or shrinks
  // the scroller (the composer growing) keeps the newest line in view. Growth
  // does not move scrollTop, so only the reader's own scrolling unsticks it.
  let stuckToBottom = true;
  dom.scroller.addEventListener("scroll", () => (stuckToBottom = nearBottom()), { passive: true });
  if (window.ResizeObserver) {
    const follow = new ResizeObserver(() => {
      if (stuckToBottom) scrollToBottom();
    });
    follow.observe(dom.messages);
    follow.observe(dom.scroller);
  }

  // -- turns -------------------------------------------------------------------

  function createTurn(key, text, turnState) {
    const turn = {
      key,
      commandId: null,
      text: text,
      state: null,
      segment: null, // the text segment that grows (the last block of the answer)
      tools: new Map(), // tool_use_id -> tool block
    };
    turn.prompt = el("div", { class: "prompt-text", "data-testid": "user-message" });
    setPromptText(turn, text);
    turn.answer = el("div", { class: "answer markdown", "data-testid": "assistant-message" });
    turn.permissions = el("div", { class: "permissions" });
    turn.notices = el("div", { class: "notices" });
    turn.error = el("p", { class: "command-error", "data-testid": "command-error", hidden: true });
    turn.stateLabel = el("span", { class: "command-state", "data-testid": "command-state" });
    turn.summary = el("span", { class: "command-summary", "data-testid": "command-summary" });
    turn.node = el(
      "article",
      { class: "turn", "data-testid": "turn" },
      el("div", { class: "bubble user" }, turn.prompt),
      el(
        "div",
        { class: "bubble assistant" },
        turn.notices,
        turn.answer,
        turn.permissions,
        turn.error,
        el("footer", { class: "turn-meta" }, turn.stateLabel, turn.summary),
      ),
    );
    setTurnState(turn, turnState || "queued", { quiet: true });
    state.turns.set(key, turn);
    const stick = nearBottom();
    dom.messages.append(turn.node);
    dom.emptyState.hidden = true;
    if (stick) scrollToBottom();
    return turn;
  }

  function setPromptText(turn, text) {
    turn.text = text;
    turn.prompt.textContent = text === null ? "…" : text;
    turn.prompt.classList.toggle("unknown", text === null);
  }

  function bindCommand(turn, commandId) {
    state.turns.delete(turn.key);
    turn.key = commandId;
    turn.commandId = commandId;
    turn.node.dataset.commandId = commandId;
    state.turns.set(commandId, turn);
  }

  /** The turn of a command, made on the spot for one we have not seen (sent from elsewhere). */
  function turnFor(commandId) {
    let turn = state.turns.get(commandId);
    if (!turn) {
      turn = createTurn(commandId, null, "running");
      bindCommand(turn, commandId);
      refreshCommandsSoon();
    }
    return turn;
  }

  /** Move a command's delivery state forward (never back); returns true if it changed. */
  function setTurnState(turn, next, { quiet = false } = {}) {
    if (!(next in RANK)) return false;
    const before = turn.state;
    if (before === next) return false;
    if (before && (FINAL.has(before) || RANK[next] < RANK[before])) return false;
    turn.state = next;
    turn.node.dataset.state = next;
    turn.stateLabel.dataset.state = next;
    turn.stateLabel.textContent = next;
    turn.node.setAttribute("aria-busy", ACTIVE.has(next) ? "true" : "false");
    if (next === "stopped" && turn.result) showResultSummary(turn, turn.result);
    if (!quiet && before && ACTIVE.has(before) && FINAL.has(next)) commandFinished(turn);
    showSessionState(turn);
    updateComposer();
    return true;
  }

  function commandFinished(turn) {
    for (const [requestId, node] of state.permissions) {
      if (node.dataset.commandId === turn.commandId) removePermission(requestId);
    }
    refreshSessionsSoon();
    const what = turn.state === "done" ? "Claude Code finished" : `Command ${turn.state}`;
    notify(what, turn.text || "");
  }

  function showCommandError(turn, error) {
    if (!error) return;
    turn.error.hidden = false;
    turn.error.textContent = window.Tether.errorText(error, "The command failed.");
    turn.error.dataset.code = error.code || "";
  }

  function clearTurns() {
    state.turns.clear();
    state.permissions.clear();
    dirty.clear();
    dom.messages.replaceChildren();
    dom.emptyState.hidden = false;
  }

  // -- answer blocks -------------------------------------------------------------

  function appendText(turn, text) {
    if (!turn.segment) {
      turn.segment = { text: "", node: el("div", { class: "segment" }) };
      turn.answer.append(turn.segment.node);
    }
    turn.segment.text += text;
    dirty.add(turn.segment);
    scheduleRender();
  }

  function toolBrief(input) {
    if (!input || typeof input !== "object") return input ? String(input) : "";
    for (const key of ["command", "file_path", "path", "pattern", "url", "query", "description", "prompt"]) {
      if (typeof input[key] === "string" && input[key]) return input[key];
    }
    const first = Object.values(input).find((v) => typeof v === "string");
    return first || "";
  }

  function pretty(value) {
    if (typeof value === "string") return value;
    try {
      return JSON.stringify(value, null, 2);
    } catch (error) {
      return String(value);
    }
  }

  function resultText(content) {
    if (typeof content === "string") return content;
    if (Array.isArray(content)) {
      return content
        .map((part) => (part && typeof part.text === "string" ? part.text : pretty(part)))
        .join("\n");
    }
    return content === undefined || content === null ? "" : pretty(content);
  }

  function addTool(turn, id, name, input, parentId) {
    if (id && turn.tools.has(id)) return turn.tools.get(id);
    const brief = toolBrief(input);
    const tool = {
      status: el("span", { class: "tool-status", text: "running" }),
      body: el("div", { class: "tool-body" }),
    };
    tool.body.append(
      el("div", { class: "tool-label", text: "Input" }),
      el("pre", { class: "tool-input" }, pretty(input === undefined ? {} : input)),
    );
    tool.node = el(
      "details",
      { class: "tool", "data-testid": "tool-call", "data-tool-state": "running", dataset: { toolUseId: id || "" } },
      el(
        "summary",
        {},
        el("span", { class: "tool-name", text: name || "tool" }),
        brief ? el("span", { class: "tool-brief", text: brief.split("\n")[0].slice(0, 160) }) : null,
        tool.status,
      ),
      tool.body,
    );
    const parent = parentId && turn.tools.get(parentId);
    if (parent) {
      // A subagent's steps go inside the tool call that started the subagent.
      if (!parent.children) {
        parent.children = el("div", { class: "tool-children" });
        parent.body.append(el("div", { class: "tool-label", text: "Steps" }), parent.children);
      }
      parent.children.append(tool.node);
    } else {
      turn.answer.append(tool.node);
      turn.segment = null; // text after a tool call starts a new block
    }
    if (id) turn.tools.set(id, tool);
    return tool;
  }

  function addNotice(turn, text) {
    turn.notices.append(el("p", { class: "turn-notice", "data-testid": "turn-notice", text }));
  }

  function setToolResult(turn, id, content, isError) {
    const tool = turn.tools.get(id) || addTool(turn, id, "tool result", undefined);
    tool.body.append(
      el("div", { class: "tool-label", text: isError ? "Error" : "Result" }),
      el("pre", { class: "tool-result" }, resultText(content) || "(no output)"),
    );
    const outcome = isError ? "error" : "done";
    tool.node.dataset.toolState = outcome;
    tool.status.textContent = outcome;
  }

  function formatDuration(ms) {
    if (typeof ms !== "number") return null;
    if (ms < 1000) return `${ms} ms`;
    const seconds = ms / 1000;
    if (seconds < 60) return `${seconds.toFixed(1)} s`;
    return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
  }

  function showResultSummary(turn, event) {
    turn.result = event;
    const parts = [];
    const ok = !event.is_error && (!event.subtype || event.subtype === "success");
    // A command stopped by its user ends "during execution" for Claude Code: not a failure to flag.
    const stopped = turn.state === "stopped";
    if (stopped) parts.push("Stopped");
    else if (ok) parts.push("Finished");
    // An API error comes as is_error with subtype "success": do not print "Ended: success".
    else if (event.subtype && event.subtype !== "success") parts.push(`Ended: ${String(event.subtype).replace(/_/g, " ")}`);
    else parts.push("Ended with an error");
    const duration = formatDuration(event.duration_ms);
    if (duration) parts[0] += ` in ${duration}`;
    if (typeof event.total_cost_usd === "number") parts.push(`$${event.total_cost_usd.toFixed(4)}`);
    if (typeof event.num_turns === "number") {
      parts.push(`${event.num_turns} turn${event.num_turns === 1 ? "" : "s"}`);
    }
    if (turn.model) parts.push(turn.model);
    turn.summary.textContent = parts.join(" · ");
    turn.summary.classList.toggle("is-error", !ok && !stopped);
  }

  function applyEvent(turn, event) {
    if (!event || typeof event !== "object") return;
    switch (event.type) {
      case "tool_use":
        addTool(turn, event.id, event.name, event.input, event.parent_tool_use_id);
        break;
      case "system":
        if (event.subtype === "init" && typeof event.model === "string") turn.model = event.model;
        if (event.subtype === "resume_failed") addNotice(turn, event.message || "A new conversation was started.");
        break;
      case "permission_expired":
        removePermission(event.request_id);
        break;
      case "tool_result":
        setToolResult(turn, event.tool_use_id, event.content, event.is_error);
        break;
      case "result":
        showResultSummary(turn, event);
        break;
      case "assistant": // Claude Code's raw message shape: tool calls inside content
        for (const block of contentBlocks(event)) {
          if (block.type === "tool_use") {
            addTool(turn, block.id, block.name, block.input, event.parent_tool_use_id);
          }
        }
        break;
      case "user":
        for (const block of contentBlocks(event)) {
          if (block.type === "tool_result") {
            setToolResult(turn, block.tool_use_id, block.content, block.is_error);
          }
        }
        break;
      default:
        break; // anything new: nothing to show
    }
  }

  function contentBlocks(event) {
    const content = event.message && event.message.content;
    return Array.isArray(content) ? content.filter((b) => b && typeof b === "object") : [];
  }

  // -- results -------------------------------------------------------------------

  function onCommandResult(message) {
    if (!message || typeof message.seq !== "number") return;
    if (message.sessionId !== state.sessionId) {
      // A new session's first results can beat the ack that names the session.
      if (awaitingNewSession()) {
        const early = state.early.get(message.sessionId) || [];
        early.push(message);
        state.early.set(message.sessionId, early);
      }
      return;
    }
    if (message.seq <= state.lastSeq) return; // duplicate
    if (message.seq > state.lastSeq + 1) {
      resubscribe(); // gap: the server replays everything after lastSeq
      return;
    }
    state.lastSeq = message.seq;
    applyResult(message);
  }

  function applyResult(message) {
    const turn = turnFor(message.commandId);
    if (message.response) appendText(turn, message.response);
    if (message.event) applyEvent(turn, message.event);
    if (message.status === "streaming") {
      setTurnState(turn, "running");
    } else if (message.status === "complete") {
      setTurnState(turn, "done");
    } else if (message.status === "error") {
      const code = message.error && message.error.code;
      setTurnState(turn, code === "interrupted" ? "stopped" : "failed");
      showCommandError(turn, message.error);
    }
  }

  function awaitingNewSession() {
    for (const send of state.pendingSends.values()) {
      if (!send.payload.sessionId && send.view === state.view) return true;
    }
    return false;
  }

  // -- subscribing -----------------------------------------------------------------

  async function subscribe() {
    if (!state.sessionId || !state.ready || !socket || !socket.connected) return;
    const view = state.view;
    const sessionId = state.sessionId;
    state.resyncing = true;
    let ack;
    try {
      ack = await window.Tether.emit(socket, "subscribe", { sessionId, afterSeq: state.lastSeq });
    } catch (error) {
      state.resyncing = false;
      return; // disconnected: the reconnect subscribes again
    }
    if (view !== state.view) return;
    state.resyncing = false;
    if (!ack.ok) {
      const code = ack.error && ack.error.code;
      if (code === "not_found") {
        showSendError("That session does not exist (or is not yours). Start a new one.");
        openSession(null, { history: "replace" });
      } else {
        showSendError(window.Tether.errorText(ack.error, "Could not open the session."));
      }
    }
  }

  function resubscribe() {
    if (!state.resyncing) subscribe();
  }

  function unsubscribe(sessionId) {
    if (sessionId && socket && socket.connected) {
      window.Tether.emit(socket, "unsubscribe", { sessionId }).catch(() => {});
    }
  }

  /** Show a session (or a blank new one, for null) and follow it. */
  async function openSession(sessionId, { history = "push" } = {}) {
    if (state.sessionId && state.sessionId !== sessionId) unsubscribe(state.sessionId);
    state.view += 1;
    const view = state.view;
    state.sessionId = sessionId;
    state.lastSeq = 0;
    state.ready = false;
    state.resyncing = false;
    state.early.clear();
    clearTurns();
    hideSendError();
    setUrl(sessionId, history);
    markCurrentSession();
    updateComposer();
    if (!sessionId) {
      state.ready = true;
      return;
    }
    let commands = [];
    try {
      commands = await window.Tether.fetchJSON(`/api/sessions/${encodeURIComponent(sessionId)}/commands`);
    } catch (error) {
      // Not fatal: the replay still shows the answers, just without prompts.
    }
    if (view !== state.view) return;
    for (const command of commands) {
      const turn = createTurn(command.commandId, command.text, command.state);
      bindCommand(turn, command.commandId);
    }
    state.ready = true;
    updateComposer();
    scrollToBottom();
    await subscribe();
  }

  function setUrl(sessionId, mode) {
    if (mode === "none") return;
    const url = new URL(window.location.href);
    if (sessionId) url.searchParams.set("session", sessionId);
    else url.searchParams.delete("session");
    if (url.href === window.location.href) return;
    if (mode === "replace") window.history.replaceState({ sessionId }, "", url);
    else window.history.pushState({ sessionId }, "", url);
  }

  // -- delivery states from the server ---------------------------------------------

  let commandsTimer = null;

  /** Live delivery state of a command we show (turns for others' commands come with their results). */
  function onCommandState(message) {
    if (!message || message.sessionId !== state.sessionId) return;
    const turn = state.turns.get(message.commandId);
    if (turn) setTurnState(turn, message.state);
  }

  function refreshCommandsSoon(delay = 400) {
    clearTimeout(commandsTimer);
    commandsTimer = setTimeout(refreshCommands, delay);
  }

  /** Fill in prompts of commands sent elsewhere and states the stream does not carry (sent, running). */
  async function refreshCommands() {
    const sessionId = state.sessionId;
    if (!sessionId) return;
    let commands;
    try {
      commands = await window.Tether.fetchJSON(`/api/sessions/${encodeURIComponent(sessionId)}/commands`);
    } catch (error) {
      return;
    }
    if (sessionId !== state.sessionId) return;
    for (const command of commands) {
      const turn = state.turns.get(command.commandId);
      if (!turn) continue; // its results will create it
      if (turn.text === null) setPromptText(turn, command.text);
      setTurnState(turn, command.state);
      if (FINAL.has(command.state) && command.state !== "done" && command.error && turn.error.hidden) {
        showCommandError(turn, { message: command.error });
      }
    }
    // A command that is still only sent may start running any moment.
    if ([...state.turns.values()].some((t) => t.state === "queued" || t.state === "sent")) {
      refreshCommandsSoon(1500);
    }
  }

  // -- sending ---------------------------------------------------------------------

  function activeTurn() {
    for (const turn of state.turns.values()) if (ACTIVE.has(turn.state)) return turn;
    return null;
  }

  function sendBlocker() {
    if (state.refused) return "You are signed out. Reload the page to sign in again.";
    if (state.connection !== "connected") {
      return "Not connected to the server. Reconnecting… your text is kept.";
    }
    if (state.pendingSends.size) return "Sending…";
    if (activeTurn()) return "Claude Code is working. Wait, or press Stop (Esc).";
    return null;
  }

  function updateComposer() {
    const blocker = sendBlocker();
    dom.send.disabled = Boolean(blocker);
    let hint = blocker || HINT;
    if (!blocker && !state.agentOnline) {
      hint = `Agent ${state.agentName} is offline: commands cannot run until it reconnects.`;
    }
    dom.status.textContent = hint;
    dom.status.dataset.reason = blocker ? "blocked" : state.agentOnline ? "" : "agent-offline";
    const running = activeTurn();
    const canStop = Boolean(running && running.commandId && state.sessionId);
    dom.stop.hidden = !canStop;
    dom.stop.disabled = state.stopping || state.connection !== "connected";
    dom.stop.textContent = state.stopping ? "Stopping…" : "Stop";
    dom.messages.setAttribute("aria-busy", running ? "true" : "false");
  }

  function submitPrompt() {
    const text = dom.prompt.value;
    if (!text.trim() || sendBlocker()) return;
    askNotificationPermission();
    hideSendError();
    const clientMessageId = window.Tether.uuid();
    const payload = { projectId: state.projectId, command: text, clientMessageId };
    if (state.sessionId) payload.sessionId = state.sessionId;
    const send = {
      clientMessageId,
      payload,
      view: state.view,
      attempts: 0,
      turn: createTurn(`pending:${clientMessageId}`, text, "queued"),
    };
    state.pendingSends.set(clientMessageId, send);
    dom.prompt.value = "";
    autosize();
    dom.prompt.focus(); // the Send button is about to be disabled: keep the focus useful
    scrollToBottom();
    updateComposer();
    attemptSend(send);
  }

  /**
   * Emit execute_command; without an ack in time, or if the socket drops
   * first, emit it again with the same clientMessageId: the server runs it once.
   */
  function attemptSend(send) {
    if (!state.pendingSends.has(send.clientMessageId)) return;
    if (!socket || !socket.connected) {
      send.waiting = true; // the next connect sends it
      return;
    }
    send.waiting = false;
    send.attempts += 1;
    window.Tether.emit(socket, "execute_command", send.payload, ACK_TIMEOUT_MS).then(
      (ack) => settleSend(send, ack),
      () => {
        if (!state.pendingSends.has(send.clientMessageId)) return;
        if (send.attempts >= MAX_SEND_ATTEMPTS) {
          settleSend(send, { ok: false, error: { code: "timeout", message: "The server did not answer. Try again." } });
        } else if (socket.connected) {
          attemptSend(send);
        } else {
          send.waiting = true;
        }
      },
    );
  }

  function settleSend(send, ack) {
    if (!state.pendingSends.delete(send.clientMessageId)) return; // answered already
    const current = send.view === state.view;
    if (!ack.ok) {
      if (current) failSend(send, ack.error);
      state.early.clear();
      updateComposer();
      return;
    }
    if (!current) return; // the user moved on to another session meanwhile
    // A fast answer may have created the command's turn already (results
    // arrived before this ack): keep that one and drop the placeholder.
    const existing = state.turns.get(ack.commandId);
    if (existing && existing !== send.turn) {
      send.turn.node.remove();
      state.turns.delete(send.turn.key);
      setPromptText(existing, send.payload.command);
    } else {
      bindCommand(send.turn, ack.commandId);
      setTurnState(send.turn, "sent");
    }
    if (!send.payload.sessionId) adoptNewSession(ack.sessionId);
    // A repeated answer (sent again after a drop) did not attach this socket
    // to the session's stream: subscribe to catch up and follow it.
    if (ack.repeated) subscribe();
    refreshCommandsSoon(300);
    refreshSessionsSoon();
    updateComposer();
  }

  function adoptNewSession(sessionId) {
    state.sessionId = sessionId;
    state.lastSeq = 0;
    setUrl(sessionId, "replace");
    const early = (state.early.get(sessionId) || []).sort((a, b) => a.seq - b.seq);
    state.early.clear();
    for (const message of early) onCommandResult(message);
    markCurrentSession();
  }

  function failSend(send, error) {
    send.turn.node.remove();
    state.turns.delete(send.turn.key);
    if (!state.turns.size) dom.emptyState.hidden = false;
    if (!dom.prompt.value) {
      dom.prompt.value = send.payload.command; // give the text back
      autosize();
    }
    showSendError(window.Tether.errorText(error, "The command could not be sent."), error && error.code);
  }

  function showSendError(text, code) {
    dom.sendError.textContent = text;
    dom.sendError.dataset.code = code || "";
    dom.sendError.hidden = false;
  }

  function hideSendError() {
    dom.sendError.hidden = true;
    dom.sendError.textContent = "";
    dom.sendError.dataset.code = "";
  }

  async function stopCommand() {
    const running = activeTurn();
    if (!running || !state.sessionId || state.stopping || !socket.connected) return;
    state.stopping = true;
    updateComposer();
    try {
      const ack = await window.Tether.emit(socket, "cancel_command", { sessionId: state.sessionId });
      if (!ack.ok && !(ack.error && ack.error.code === "not_found")) {
        showSendError(window.Tether.errorText(ack.error, "Could not stop the command."));
      }
    } catch (error) {
      showSendError("Could not reach the server to stop the command. Try again.");
    } finally {
      state.stopping = false;
      updateComposer();
    }
  }

  // -- permissions -------------------------------------------------------------------

  function onPermissionRequest(message) {
    if (!message || message.sessionId !== state.sessionId) return;
    if (state.permissions.has(message.requestId)) return;
    const turn = turnFor(message.commandId);
    if (FINAL.has(turn.state)) return; // a stale request of a finished command
    const title = el("p", { class: "permission-title" }, "Allow ", el("strong", { text: message.toolName }), "?");
    const input = message.input && typeof message.input === "object" ? message.input : { value: message.input };
    const preview = permissionPreview(input);
    const brief = preview.target ? `${preview.target}\n${preview.body}` : preview.body;
    const error = el("p", { class: "permission-error", role: "alert", hidden: true });
    const allow = el("button", { type: "button", class: "primary", "data-testid": "allow", text: "Allow" });
    const deny = el("button", { type: "button", class: "danger-outline", "data-testid": "deny", text: "Deny" });
    const node = el(
      "div",
      {
        class: "permission",
        role: "group",
        "aria-label": `Permission request: ${message.toolName}`,
        "data-testid": "permission-request",
        dataset: { requestId: message.requestId, commandId: message.commandId, toolName: message.toolName },
      },
      title,
      preview.target ? el("p", { class: "permission-target" }, el("code", { text: preview.target })) : null,
      el("pre", { class: "permission-input" }, preview.body),
      el("div", { class: "permission-actions" }, allow, deny),
      error,
    );
    allow.addEventListener("click", () => answerPermission(message, "allow", node));
    deny.addEventListener("click", () => answerPermission(message, "deny", node));
    state.permissions.set(message.requestId, node);
    turn.permissions.append(node);
    scrollToBottom();
    announce(`Claude Code asks to use ${message.toolName}. Allow or deny.`);
    notify(`Approval needed: ${message.toolName}`, brief.slice(0, 200));
  }

  /** What a tool asks to do, for people: a shell command, a file and its new text, an edit as a diff. */
  function permissionPreview(input) {
    const text = (key) => (typeof input[key] === "string" ? input[key] : null);
    if (text("command") !== null) return { target: null, body: text("command") };
    const path = text("file_path") || text("notebook_path") || text("path");
    if (path && text("content") !== null) return { target: path, body: text("content") || "(empty file)" };
    if (path && text("old_string") !== null && text("new_string") !== null) {
      const lines = (value, mark) => value.split("\n").map((line) => `${mark} ${line}`);
      return { target: path, body: [...lines(text("old_string"), "-"), ...lines(text("new_string"), "+")].join("\n") };
    }
    return { target: null, body: pretty(input) };
  }

  async function answerPermission(message, decision, node) {
    const buttons = node.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    const error = node.querySelector(".permission-error");
    error.hidden = true;
    try {
      const ack = await window.Tether.emit(socket, "permission_response", {
        sessionId: message.sessionId,
        requestId: message.requestId,
        decision,
      });
      if (ack.ok || (ack.error && ack.error.code === "not_found")) {
        removePermission(message.requestId);
        return;
      }
      error.textContent = window.Tether.errorText(ack.error, "The answer was not accepted.");
    } catch (err) {
      error.textContent = "Not connected: the answer was not sent. Try again.";
    }
    error.hidden = false;
    buttons.forEach((b) => (b.disabled = false));
  }

  function removePermission(requestId) {
    const node = state.permissions.get(requestId);
    if (!node) return;
    state.permissions.delete(requestId);
    const hadFocus = node.contains(document.activeElement);
    node.remove();
    if (hadFocus) dom.prompt.focus();
  }

  function onPermissionResolved(message) {
    if (message && message.requestId) removePermission(message.requestId);
  }

  function announce(text) {
    dom.announcer.textContent = "";
    // A change after a tick is announced even when the text repeats.
    setTimeout(() => (dom.announcer.textContent = text), 50);
  }

  // -- notifications -----------------------------------------------------------------

  const NOTIFY_ASKED = "tether.notificationsAsked";

  /** Ask once, from a user gesture (the first send), for permission to notify. */
  function askNotificationPermission() {
    if (!("Notification" in window) || Notification.permission !== "default") return;
    try {
      if (localStorage.getItem(NOTIFY_ASKED)) return;
      localStorage.setItem(NOTIFY_ASKED, "1");
    } catch (error) {
      // Storage refused: ask anyway, the browser remembers the answer.
    }
    Notification.requestPermission().catch(() => {});
  }

  function notify(title, body) {
    if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return;
    try {
      const n = new Notification(title, { body, tag: `tether-${state.sessionId || "new"}` });
      n.onclick = () => {
        window.focus();
        n.close();
      };
    } catch (error) {
      // Some browsers only notify from a service worker; nothing else to do.
    }
  }

  // -- the session list ----------------------------------------------------------------

  let sessionsTimer = null;

  function refreshSessionsSoon(delay = 300) {
    clearTimeout(sessionsTimer);
    sessionsTimer = setTimeout(refreshSessions, delay);
  }

  async function refreshSessions() {
    let sessions;
    try {
      sessions = await window.Tether.fetchJSON(`/api/projects/${encodeURIComponent(state.projectId)}/sessions`);
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
            el("span", { class: "session-time", text: window.Tether.relativeTime(s.updatedAt) }),
          ),
        ),
      ),
    );
    if (!items.length) items.push(el("li", { class: "muted empty", text: "No sessions yet." }));
    dom.sessionList.replaceChildren(...items);
    markCurrentSession();
  }

  /** The session list shows the state of each session's last command: keep ours live. */
  function showSessionState(turn) {
    if (!state.sessionId || !turn.commandId) return;
    if (dom.messages.lastElementChild !== turn.node) return;
    const link = dom.sessionList.querySelector(`a[data-session-id="${CSS.escape(state.sessionId)}"]`);
    const label = link && link.querySelector(".session-state");
    if (label) {
      label.dataset.state = turn.state;
      label.textContent = turn.state;
    }
  }

  function markCurrentSession() {
    for (const link of dom.sessionList.querySelectorAll("a[data-session-id]")) {
      if (link.dataset.sessionId === state.sessionId) link.setAttribute("aria-current", "page");
      else link.removeAttribute("aria-current");
    }
  }

  /** The phone's full-screen sessions panel: focus moves into it and back to its button. */
  function setSidebar(open) {
    const wasOpen = root.classList.contains("sessions-open");
    root.classList.toggle("sessions-open", open);
    dom.sessionsToggle.setAttribute("aria-expanded", open ? "true" : "false");
    if (open && !wasOpen) dom.sessionsClose.focus();
    else if (!open && wasOpen && root.querySelector(".sessions").contains(document.activeElement)) {
      dom.sessionsToggle.focus();
    }
  }

  // -- wiring ------------------------------------------------------------------------

  function autosize() {
    dom.prompt.classList.toggle("tall", dom.prompt.value.split("\n").length > 2 || dom.prompt.value.length > 160);
  }

  dom.form.addEventListener("submit", (event) => {
    event.preventDefault();
    submitPrompt();
  });

  dom.prompt.addEventListener("keydown", (event) => {
    if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey) {
      event.preventDefault();
      submitPrompt();
    }
  });
  dom.prompt.addEventListener("input", autosize);

  document.addEventListener("keydown", (event) => {
    if (event.key === "Escape" && !event.defaultPrevented) {
      if (root.classList.contains("sessions-open")) setSidebar(false);
      else if (activeTurn()) stopCommand();
    }
  });

  dom.stop.addEventListener("click", stopCommand);

  dom.newSession.addEventListener("click", () => {
    setSidebar(false);
    openSession(null);
    dom.prompt.focus();
  });

  dom.sessionList.addEventListener("click", (event) => {
    const link = event.target.closest("a[data-session-id]");
    if (!link || event.metaKey || event.ctrlKey || event.shiftKey || event.button !== 0) return;
    event.preventDefault();
    setSidebar(false);
    if (link.dataset.sessionId !== state.sessionId) openSession(link.dataset.sessionId);
  });

  dom.sessionsToggle.addEventListener("click", () => setSidebar(!root.classList.contains("sessions-open")));
  dom.sessionsClose.addEventListener("click", () => setSidebar(false));

  window.addEventListener("popstate", () => {
    const id = new URL(window.location.href).searchParams.get("session");
    if (id !== state.sessionId) openSession(id, { history: "none" });
  });

  window.Tether.onConnectionChange((connection, info) => {
    state.connection = connection;
    state.refused = info.refused;
    updateComposer();
  });

  if (socket) {
    socket.on("connect", () => {
      // Catch up on whatever happened while we were away.
      for (const node of state.permissions.values()) node.remove();
      state.permissions.clear(); // the subscribe re-sends the ones still pending
      state.resyncing = false;
      subscribe();
      for (const send of state.pendingSends.values()) if (send.waiting) attemptSend(send);
      if (state.sessionId && state.ready) refreshCommandsSoon(200);
      refreshSessionsSoon(500);
    });
    socket.on("command_result", onCommandResult);
    socket.on("permission_request", onPermissionRequest);
    socket.on("permission_resolved", onPermissionResolved);
    socket.on("command_state", onCommandState);
    socket.on("agent_status", (message) => {
      if (!message || message.agentId !== state.agentId) return;
      state.agentOnline = Boolean(message.online);
      if (message.name) state.agentName = message.name;
      const word = state.agentOnline ? "online" : "offline";
      dom.agentStatus.dataset.agentStatus = word;
      dom.agentStatus.querySelector(".label").textContent = `${state.agentName} ${word}`;
      // "agent laptop is offline" is no longer true: the text is still in the prompt to send.
      if (state.agentOnline && dom.sendError.dataset.code === "agent_offline") hideSendError();
      updateComposer();
    });
  }

  // The server renders the sessions' times as timestamps: say them the way the refresh does.
  for (const node of dom.sessionList.querySelectorAll(".session-time[data-updated-at]")) {
    node.textContent = window.Tether.relativeTime(node.dataset.updatedAt);
  }

  // Permission mode of the project: saved at once, used from the next command on.
  const modeSelect = document.querySelector("[data-testid=permission-mode]");
  if (modeSelect) {
    modeSelect.addEventListener("change", async () => {
      const token = document.querySelector("meta[name=csrf-token]").content;
      const response = await fetch(`/api/projects/${encodeURIComponent(state.projectId)}/settings`, {
        method: "POST",
        credentials: "same-origin",
        headers: { "Content-Type": "application/json", "X-CSRFToken": token },
        body: JSON.stringify({ permissionMode: modeSelect.value }),
      });
      modeSelect.dataset.saved = response.ok ? modeSelect.value : "error";
    });
  }

  const initial = new URL(window.location.href).searchParams.get("session");
  openSession(initial, { history: "none" });
  autosize();
  if (!initial) dom.prompt.focus();
})();
