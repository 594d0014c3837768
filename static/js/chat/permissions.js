/* Pending permission prompts: shown in their command's turn, answered with Allow or Deny. */
import { EVENTS } from "../generated/protocol.js";
import { emit } from "../lib/connection.js";
import { el, errorText } from "../lib/dom.js";
import { announce, notify } from "./alerts.js";
import { pretty } from "./view.js";

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

export class Permissions {
  /** `socket` answers; `dom` has prompt and announcer; `onAnswered(requestId)` tells the store.
   * `readOnly` (a viewer): the request is shown, without Allow and Deny. */
  constructor({ socket, dom, onAnswered, readOnly = false }) {
    Object.assign(this, { socket, dom, onAnswered, readOnly });
    this.nodes = new Map(); // requestId -> element
    this.unnoticed = new Map(); // requestId -> its notification, asked while the tab was visible
    // A request that came while the user looked, still waiting when they turn away: tell them then.
    document.addEventListener("visibilitychange", () => this.notifyUnnoticed());
  }

  notifyUnnoticed() {
    for (const [requestId, alert] of this.unnoticed) if (notify(...alert)) this.unnoticed.delete(requestId);
  }

  /** A store change about permissions; false for any other. */
  apply(change, view) {
    if (change.op === "permission") this.show(change.request, view.view(change.turn));
    else if (change.op === "permission_gone") this.remove(change.requestId);
    else if (change.op === "reset") {
      this.nodes.clear();
      this.unnoticed.clear();
    }
    else return false;
    return true;
  }

  show(message, turnView) {
    if (!turnView) return;
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
      el("p", { class: "permission-title" }, "Allow ", el("strong", { text: message.toolName }), "?"),
      preview.target ? el("p", { class: "permission-target" }, el("code", { text: preview.target })) : null,
      el("pre", { class: "permission-input" }, preview.body),
      this.readOnly ? el("p", { class: "muted", text: "Waiting for an operator's answer." }) : el("div", { class: "permission-actions" }, allow, deny),
      error,
    );
    allow.addEventListener("click", () => this.answer(message, "allow", node));
    deny.addEventListener("click", () => this.answer(message, "deny", node));
    this.nodes.set(message.requestId, node);
    turnView.permissions.append(node);
    announce(this.dom.announcer, `Claude Code asks to use ${message.toolName}. Allow or deny.`);
    const alert = [`Approval needed: ${message.toolName}`, brief.slice(0, 200), message.sessionId];
    if (!notify(...alert)) this.unnoticed.set(message.requestId, alert);
  }

  async answer(message, decision, node) {
    const buttons = node.querySelectorAll("button");
    buttons.forEach((b) => (b.disabled = true));
    const error = node.querySelector(".permission-error");
    error.hidden = true;
    try {
      const ack = await emit(this.socket, EVENTS.PERMISSION_RESPONSE, {
        sessionId: message.sessionId,
        requestId: message.requestId,
        decision,
      });
      if (ack.ok || (ack.error && ack.error.code === "not_found")) {
        this.onAnswered(message.requestId);
        return;
      }
      error.textContent = errorText(ack.error, "The answer was not accepted.");
    } catch (err) {
      error.textContent = "Not connected: the answer was not sent. Try again.";
    }
    error.hidden = false;
    buttons.forEach((b) => (b.disabled = false));
  }

  remove(requestId) {
    this.unnoticed.delete(requestId);
    const node = this.nodes.get(requestId);
    if (!node) return;
    this.nodes.delete(requestId);
    const hadFocus = node.contains(document.activeElement);
    node.remove();
    if (hadFocus) this.dom.prompt?.focus();
  }
}
