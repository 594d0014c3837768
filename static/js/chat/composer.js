/* The composer: sending a prompt (once, however often the socket drops), Stop, and why Send is disabled.
 *
 * Each send has a clientMessageId. Without an ack within ACK_TIMEOUT_MS, or if
 * the socket drops first, the same payload is emitted again after reconnecting
 * (up to MAX_SEND_ATTEMPTS); the server runs it once.
 */
import { EVENTS } from "../generated/protocol.js";
import { emit, onConnectionChange } from "../lib/connection.js";
import { errorText, uuid } from "../lib/dom.js";
import { askNotificationPermission } from "./alerts.js";
import { activeTurn } from "./store.js";

const ACK_TIMEOUT_MS = 5000;
const ACK_MS_PER_MB = 2000; // attachments take longer to arrive (up to 7 MB of base64)
const MAX_SEND_ATTEMPTS = 6;
const HINT = "Enter to send · Shift+Enter for a new line";

export class Composer {
  /**
   * `page` is the chat page's controller: its state (the store's), dispatch(),
   * view number (bumped when another session opens) and subscribe().
   */
  constructor({ dom, socket, page, projectId, agent, attachments, model, plan, completion }) {
    // attachments, model, plan, completion: the files to send, the model picker, the "plan only"
    // checkbox (it stays as set: plan, then plan again, is the usual way), the slash-command list.
    Object.assign(this, { dom, socket, page, projectId, agent, attachments, model, plan, completion });
    this.pending = new Map(); // clientMessageId -> send awaiting its ack
    this.stopping = false;
    this.connection = "connecting";
    this.refused = false;
    onConnectionChange((connection, info) => {
      this.connection = connection;
      this.refused = info.refused;
      this.update();
    });
    this.wire();
  }

  wire() {
    const { dom } = this;
    dom.form.addEventListener("submit", (event) => {
      event.preventDefault();
      this.submit();
    });
    dom.prompt.addEventListener("keydown", (event) => {
      if (this.completion && this.completion.keydown(event)) return; // the slash-command list took it
      if (event.key === "Enter" && !event.shiftKey && !event.isComposing && !event.altKey && !event.ctrlKey) {
        event.preventDefault();
        this.submit();
      }
    });
    dom.prompt.addEventListener("input", () => this.autosize());
    dom.stop.addEventListener("click", () => this.stop());
    this.autosize();
  }

  autosize() {
    const { value } = this.dom.prompt;
    this.dom.prompt.classList.toggle("tall", value.split("\n").length > 2 || value.length > 160);
  }

  blocker() {
    if (this.refused) return "You are signed out. Reload the page to sign in again.";
    if (this.connection !== "connected") return "Not connected to the server. Reconnecting… your text is kept.";
    if (this.pending.size) return "Sending…";
    if (this.attachments && this.attachments.busy) return "Reading the files…";
    if (activeTurn(this.page.state)) return "Claude Code is working. Wait, or press Stop (Esc).";
    return null;
  }

  /** Called after every change of the page: touches the DOM only where something differs. */
  update() {
    const { dom, agent } = this;
    const blocker = this.blocker();
    let hint = blocker || HINT;
    if (!blocker && !agent.online) hint = `Agent ${agent.name} is offline: commands cannot run until it reconnects.`;
    const running = activeTurn(this.page.state);
    const shown = {
      blocked: Boolean(blocker),
      hint,
      reason: blocker ? "blocked" : agent.online ? "" : "agent-offline",
      stop: Boolean(running && running.commandId && this.page.state.sessionId),
      stopEnabled: !this.stopping && this.connection === "connected",
      stopping: this.stopping,
      busy: Boolean(running),
    };
    const before = this.shown || {};
    this.shown = shown;
    if (Object.keys(shown).every((key) => before[key] === shown[key])) return;
    dom.send.disabled = shown.blocked;
    dom.status.textContent = shown.hint;
    dom.status.dataset.reason = shown.reason;
    dom.stop.hidden = !shown.stop;
    dom.stop.disabled = !shown.stopEnabled;
    dom.stop.textContent = shown.stopping ? "Stopping…" : "Stop";
    dom.messages.setAttribute("aria-busy", shown.busy ? "true" : "false");
  }

  submit() {
    const text = this.dom.prompt.value;
    if (!text.trim() || this.blocker()) return;
    askNotificationPermission();
    this.hideError();
    const clientMessageId = uuid();
    const { sessionId } = this.page.state;
    const payload = { projectId: this.projectId, command: text, clientMessageId };
    if (sessionId) payload.sessionId = sessionId;
    const model = this.model && this.model.value();
    if (model) payload.model = model;
    if (this.plan && this.plan.checked) payload.permissionMode = "plan";
    const files = this.attachments ? this.attachments.take() : [];
    if (files.length) payload.attachments = files.map(({ name, mediaType, data }) => ({ name, mediaType, data }));
    const send = { clientMessageId, payload, files, key: `pending:${clientMessageId}`, view: this.page.view, attempts: 0 };
    this.pending.set(clientMessageId, send);
    const shown = files.map(({ name, mediaType, size, url }) => ({ name, mediaType, size, url, local: true }));
    this.page.dispatch({ type: "send", key: send.key, text, newSession: !sessionId, attachments: shown });
    this.dom.prompt.value = "";
    this.autosize();
    this.dom.prompt.focus(); // the Send button is about to be disabled: keep the focus useful
    this.page.scrollToBottom();
    this.update();
    this.attempt(send);
  }

  /** Emit execute_command; again, with the same clientMessageId, after a timeout or a drop. */
  attempt(send) {
    if (!this.pending.has(send.clientMessageId)) return;
    if (!this.socket || !this.socket.connected) {
      send.waiting = true; // the next connect sends it
      return;
    }
    send.waiting = false;
    send.attempts += 1;
    const megabytes = send.files.reduce((sum, file) => sum + file.size, 0) / 1e6;
    emit(this.socket, EVENTS.EXECUTE_COMMAND, send.payload, ACK_TIMEOUT_MS + ACK_MS_PER_MB * megabytes).then(
      (ack) => this.settle(send, ack),
      () => {
        if (!this.pending.has(send.clientMessageId)) return;
        if (send.attempts >= MAX_SEND_ATTEMPTS) {
          this.settle(send, { ok: false, error: { code: "timeout", message: "The server did not answer. Try again." } });
        } else if (this.socket.connected) {
          this.attempt(send);
        } else {
          send.waiting = true;
        }
      },
    );
  }

  /** After a reconnect: sends that were waiting for the socket go out again. */
  resend() {
    for (const send of this.pending.values()) if (send.waiting) this.attempt(send);
  }

  settle(send, ack) {
    if (!this.pending.delete(send.clientMessageId)) return; // answered already
    const current = send.view === this.page.view; // not if the user opened another session meanwhile
    const newSession = !send.payload.sessionId;
    if (!ack.ok) {
      if (current) {
        this.page.dispatch({ type: "send_failed", key: send.key, newSession });
        if (!this.dom.prompt.value) {
          this.dom.prompt.value = send.payload.command; // give the text back
          this.autosize();
        }
        if (this.attachments) this.attachments.restore(send.files); // and the files
        this.showError(errorText(ack.error, "The command could not be sent."), ack.error && ack.error.code);
      }
      this.update();
      return;
    }
    if (!current) return;
    this.page.dispatch({ type: "sent", key: send.key, commandId: ack.commandId, sessionId: ack.sessionId, newSession });
    // A repeated answer (sent again after a drop) did not attach this socket
    // to the session's stream: subscribe to catch up and follow it.
    if (ack.repeated) this.page.subscribe();
    this.page.sessions.refreshSoon();
    this.update();
  }

  async stop() {
    const running = activeTurn(this.page.state);
    const { sessionId } = this.page.state;
    if (!running || !sessionId || this.stopping || !this.socket || !this.socket.connected) return;
    this.stopping = true;
    this.update();
    try {
      const ack = await emit(this.socket, EVENTS.CANCEL_COMMAND, { sessionId });
      if (!ack.ok && !(ack.error && ack.error.code === "not_found")) {
        this.showError(errorText(ack.error, "Could not stop the command."));
      }
    } catch (error) {
      this.showError("Could not reach the server to stop the command. Try again.");
    } finally {
      this.stopping = false;
      this.update();
    }
  }

  showError(text, code) {
    const { sendError } = this.dom;
    sendError.textContent = text;
    sendError.dataset.code = code || "";
    sendError.hidden = false;
  }

  hideError() {
    const { sendError } = this.dom;
    sendError.hidden = true;
    sendError.textContent = "";
    sendError.dataset.code = "";
  }
}

/** A viewer's page has no composer: the same calls, nothing to send or stop. */
export class ReadOnlyComposer {
  constructor({ dom }) {
    this.dom = dom;
  }

  update() {}

  resend() {}

  stop() {}

  hideError() {
    this.dom.sendError.hidden = true;
  }

  showError(text) {
    this.dom.sendError.textContent = text;
    this.dom.sendError.hidden = false;
  }
}
