/* The conversation on screen: one <article> per turn, built and changed from the store's changes.
 *
 * Each turn holds the prompt, then the answer (Markdown text segments and tool
 * calls in stream order), pending permission prompts, and a footer with the
 * command's state and the closing line of its `result` event. Answer text is
 * taken in by MarkdownStream (markdown.js) at most once per animation frame,
 * within a time budget, newest segment first; everything else is applied at once.
 */
import { el, errorText } from "../lib/dom.js";
import { attachmentFace, attachmentUrl } from "./attachments.js";
import { MarkdownStream } from "./markdown.js";
import { isActive } from "./store.js";

const FRAME_BUDGET_MS = 8; // text work per frame, so that input and scrolling stay smooth
const HIDDEN_DELAY_MS = 250; // a hidden tab gets no animation frames: a timer takes over
// A frame that took in more text than this (a fast stream: 60 KB/s and up, more than anyone
// reads) is followed by BULK_MS without text work: every frame costs a layout, a paint and a
// commit, whatever it shows, and at this pace 20 frames a second show as much as 60.
const BULK_CHARS = 1024;
const BULK_MS = 50;
const READER_SCROLL_MS = 1000; // a scroll this soon after the reader's own input is theirs
const SCROLL_KEYS = new Set(["ArrowUp", "ArrowDown", "PageUp", "PageDown", "Home", "End", " "]);

// -- frames ------------------------------------------------------------------------------

const dirty = new Set(); // MarkdownStreams with text to take in
let scheduled = false;
let bulk = false; // the last frame took in a lot of text: wait a little before the next

function markDirty(stream) {
  dirty.add(stream);
  schedule(bulk);
}

function schedule(skipFrame = false) {
  if (scheduled) return;
  scheduled = true;
  if (document.hidden) setTimeout(runFrame, HIDDEN_DELAY_MS);
  else if (skipFrame) setTimeout(() => requestAnimationFrame(runFrame), BULK_MS);
  else requestAnimationFrame(runFrame);
}

/** Newest text first (the reader is at the bottom, or scrolling up from it), within the budget. */
function runFrame() {
  scheduled = false;
  const deadline = performance.now() + FRAME_BUDGET_MS;
  let taken = 0;
  for (const stream of [...dirty].reverse()) {
    const backlog = stream.backlog;
    if (!stream.flush(deadline)) dirty.delete(stream);
    taken += backlog - stream.backlog;
    if (performance.now() > deadline) break;
  }
  bulk = taken > BULK_CHARS;
  if (dirty.size) schedule(bulk);
}

/** Take in every pending text now (tests and the end of a history load). */
export function flushAll() {
  for (const stream of dirty) stream.flush();
  dirty.clear();
}

// -- formatting ----------------------------------------------------------------------------

function toolBrief(input) {
  if (!input || typeof input !== "object") return input ? String(input) : "";
  for (const key of ["command", "file_path", "path", "pattern", "url", "query", "description", "prompt"]) {
    if (typeof input[key] === "string" && input[key]) return input[key];
  }
  const first = Object.values(input).find((v) => typeof v === "string");
  return first || "";
}

export function pretty(value) {
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
    return content.map((part) => (part && typeof part.text === "string" ? part.text : pretty(part))).join("\n");
  }
  return content === undefined || content === null ? "" : pretty(content);
}

function formatDuration(ms) {
  if (typeof ms !== "number") return null;
  if (ms < 1000) return `${ms} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(1)} s`;
  return `${Math.floor(seconds / 60)} min ${Math.round(seconds % 60)} s`;
}

/** The closing line of a command: how it ended, how long it took, what it cost. */
function summaryText(turn) {
  const event = turn.result;
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
  if (typeof event.num_turns === "number") parts.push(`${event.num_turns} turn${event.num_turns === 1 ? "" : "s"}`);
  if (turn.model) parts.push(turn.model);
  if (turn.permissionMode === "plan") parts.push("plan only");
  return { text: parts.join(" · "), flagged: !ok && !stopped };
}

// -- one turn --------------------------------------------------------------------------------

class TurnView {
  constructor(turn) {
    this.segment = null; // the text segment that grows (the last block of the answer)
    this.tools = new Map(); // tool_use_id -> {node, status, body, children}
    this.prompt = el("div", { class: "prompt-text", "data-testid": "user-message" });
    this.sender = el("span", { class: "sender muted", "data-testid": "sender", hidden: true });
    this.files = el("ul", { class: "turn-attachments", "data-testid": "turn-attachments", hidden: true });
    this.answer = el("div", { class: "answer markdown", "data-testid": "assistant-message" });
    this.permissions = el("div", { class: "permissions" });
    this.notices = el("div", { class: "notices" });
    this.error = el("p", { class: "command-error", "data-testid": "command-error", hidden: true });
    this.stateLabel = el("span", { class: "command-state", "data-testid": "command-state" });
    this.summary = el("span", { class: "command-summary", "data-testid": "command-summary" });
    this.node = el(
      "article",
      { class: "turn", "data-testid": "turn" },
      el("div", { class: "bubble user" }, this.sender, this.prompt, this.files),
      el(
        "div",
        { class: "bubble assistant" },
        this.notices,
        this.answer,
        this.permissions,
        this.error,
        el("footer", { class: "turn-meta" }, this.stateLabel, this.summary),
      ),
    );
    this.bind(turn);
    this.showPrompt(turn);
    this.showState(turn);
  }

  bind(turn) {
    if (turn.commandId) this.node.dataset.commandId = turn.commandId;
  }

  /** Who sent the prompt: shown only in a shared project, where it is not always you. */
  showSender(turn, shared) {
    this.sender.textContent = turn.by || "";
    this.sender.hidden = !(shared && turn.by);
  }

  showPrompt(turn) {
    this.prompt.textContent = turn.prompt === null ? "…" : turn.prompt;
    this.prompt.classList.toggle("unknown", turn.prompt === null);
  }

  /** The files sent with the prompt: images as thumbnails, text files by name (links once stored). */
  showAttachments(turn) {
    this.files.replaceChildren(
      ...turn.attachments.map((item) => {
        const stored = !item.local && turn.commandId && typeof item.index === "number";
        const href = stored ? attachmentUrl(turn.commandId, item.index) : null;
        return el("li", { class: "attachment-chip", "data-testid": "turn-attachment", dataset: { name: item.name } }, attachmentFace(item, href));
      }),
    );
    this.files.hidden = !turn.attachments.length;
  }

  showState(turn) {
    this.node.dataset.state = turn.state;
    this.stateLabel.dataset.state = turn.state;
    this.stateLabel.textContent = turn.state;
    this.node.setAttribute("aria-busy", isActive(turn.state) ? "true" : "false");
    if (turn.result) this.showSummary(turn);
    if (!isActive(turn.state)) this.endText();
  }

  /** The answer's text is complete (for now: a lost command may be reopened): format its end. */
  endText() {
    if (!this.segment) return;
    this.segment.finish();
    markDirty(this.segment);
  }

  showError(turn) {
    this.error.hidden = !turn.error;
    this.error.textContent = turn.error ? errorText(turn.error, "The command failed.") : "";
    this.error.dataset.code = (turn.error && turn.error.code) || "";
  }

  showSummary(turn) {
    const { text, flagged } = summaryText(turn);
    this.summary.textContent = text;
    this.summary.classList.toggle("is-error", flagged);
  }

  text(text) {
    if (!this.segment) {
      const node = el("div", { class: "segment" });
      this.answer.append(node);
      this.segment = new MarkdownStream(node);
    }
    this.segment.append(text);
    markDirty(this.segment);
  }

  tool({ id, name, input, parent: parentId }) {
    if (id && this.tools.has(id)) return this.tools.get(id);
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
    const parent = parentId && this.tools.get(parentId);
    if (parent) {
      // A subagent's steps go inside the tool call that started the subagent.
      if (!parent.children) {
        parent.children = el("div", { class: "tool-children" });
        parent.body.append(el("div", { class: "tool-label", text: "Steps" }), parent.children);
      }
      parent.children.append(tool.node);
    } else {
      this.endText(); // text after a tool call starts a new block
      this.segment = null;
      this.answer.append(tool.node);
    }
    if (id) this.tools.set(id, tool);
    return tool;
  }

  toolResult({ id, content, isError }) {
    const tool = this.tools.get(id) || this.tool({ id, name: "tool result" });
    tool.body.append(
      el("div", { class: "tool-label", text: isError ? "Error" : "Result" }),
      el("pre", { class: "tool-result" }, resultText(content) || "(no output)"),
    );
    const outcome = isError ? "error" : "done";
    tool.node.dataset.toolState = outcome;
    tool.status.textContent = outcome;
  }

  notice(text) {
    this.notices.append(el("p", { class: "turn-notice", "data-testid": "turn-notice", text }));
  }
}

// -- the conversation ----------------------------------------------------------------------------

/** The turns of the open session inside `messages` (the scrolling element is `scroller`). */
export class ConversationView {
  /** `shared`: the project has members, so each prompt is named with its sender. */
  constructor({ messages, scroller, emptyState, shared = false }) {
    Object.assign(this, { messages, scroller, emptyState, shared });
    this.views = new Map(); // turn object -> TurnView
    this.followBottom();
  }

  /** The DOM part of a store change; returns false for changes that are not the view's. */
  apply(change) {
    const { turn } = change;
    const view = turn && this.views.get(turn);
    switch (change.op) {
      case "reset":
        this.clear();
        return true;
      case "turn":
        this.add(turn, change.before);
        return true;
      case "remove":
        if (view) view.node.remove();
        this.views.delete(turn);
        this.emptyState.hidden = this.views.size > 0;
        return true;
      case "bind":
        view.bind(turn);
        return true;
      case "attachments":
        view.showAttachments(turn);
        return true;
      case "prompt":
        view.showPrompt(turn);
        return true;
      case "sender":
        view.showSender(turn, this.shared);
        return true;
      case "state":
        view.showState(turn);
        return true;
      case "error":
        view.showError(turn);
        return true;
      case "summary":
        view.showSummary(turn);
        return true;
      case "end":
        view.endText();
        return true;
      case "text":
        view.text(change.text);
        return true;
      case "tool":
        view.tool(change);
        return true;
      case "tool_result":
        view.toolResult(change);
        return true;
      case "notice":
        view.notice(change.text);
        return true;
      default:
        return false;
    }
  }

  view(turn) {
    return this.views.get(turn);
  }

  add(turn, beforeKey) {
    const view = new TurnView(turn);
    this.views.set(turn, view);
    const before = beforeKey && this.messages.querySelector(`:scope > [data-command-id="${CSS.escape(beforeKey)}"]`);
    if (before) before.before(view.node);
    else this.messages.append(view.node);
    this.emptyState.hidden = true;
  }

  clear() {
    for (const view of this.views.values()) if (view.segment) dirty.delete(view.segment);
    this.views.clear();
    this.messages.replaceChildren();
    this.emptyState.hidden = false;
  }

  /** True if `turn` is the last one shown. */
  isLast(turn) {
    const view = this.views.get(turn);
    return Boolean(view) && this.messages.lastElementChild === view.node;
  }

  // -- scrolling --

  /** Where a turn is on screen, to keep it there while turns go in above it. */
  position(turn) {
    const view = turn && this.views.get(turn);
    return view ? { node: view.node, top: view.node.getBoundingClientRect().top } : null;
  }

  /**
   * Put the turn back where position() found it. The browser's scroll anchoring does this
   * for text that grows above the view, but not at the very top (scrollTop 0), where a
   * reader who scrolled all the way up is.
   */
  restore(kept) {
    if (!kept) return;
    const moved = kept.node.getBoundingClientRect().top - kept.top;
    if (moved) this.scroller.scrollTop += moved;
  }

  nearBottom() {
    const s = this.scroller;
    return s.scrollHeight - s.scrollTop - s.clientHeight < 120;
  }

  scrollToBottom() {
    this.scroller.scrollTop = this.scroller.scrollHeight;
    this.stuck = true;
  }

  /**
   * Follow the bottom while the reader is there: whatever grows the conversation
   * (text, a closing line, an error, a permission prompt, a tool result) or
   * shrinks the scroller (the composer growing) keeps the newest line in view.
   * Growth does not move scrollTop, so only the reader's own scrolling unsticks it.
   */
  followBottom() {
    this.stuck = true;
    // Only the reader lets go of the bottom: a scroll right after their wheel, touch, key
    // or pointer. Layout also scrolls (turns drawn above the view change size, the browser
    // keeps the view still), and that must not stop the following.
    let touched = 0;
    const reader = () => (touched = performance.now());
    for (const event of ["wheel", "touchmove", "pointerdown"]) {
      this.scroller.addEventListener(event, reader, { passive: true });
    }
    document.addEventListener("keydown", (event) => {
      const typing = event.target.closest && event.target.closest("textarea, input, select, [contenteditable]");
      if (SCROLL_KEYS.has(event.key) && !typing) reader();
    });
    this.scroller.addEventListener(
      "scroll",
      () => {
        if (this.nearBottom()) this.stuck = true;
        else if (performance.now() - touched < READER_SCROLL_MS) this.stuck = false;
      },
      { passive: true },
    );
    if (!window.ResizeObserver) return;
    const follow = new ResizeObserver(() => {
      if (this.stuck) this.scroller.scrollTop = this.scroller.scrollHeight;
    });
    follow.observe(this.messages);
    follow.observe(this.scroller);
  }
}
