/* A read-only link's page: follows one session live, with the link's token as the socket's auth.
 * It shows each command's prompt and answer as text; it offers no prompt, stop, allow or deny. */
import { EVENTS, finalState } from "./generated/protocol.js";

const root = document.querySelector(".shared-session");
const messages = root.querySelector("[data-testid=messages]");
const status = root.querySelector("[data-testid=connection-status]");
const sessionId = root.dataset.sessionId;
const turns = new Map(); // command id -> {answer, state}
let lastSeq = 0;

function showConnection(state, label) {
  status.dataset.state = state;
  status.querySelector(".label").textContent = label;
}

function turnFor(commandId, prompt) {
  let turn = turns.get(commandId);
  if (!turn) {
    const node = document.createElement("article");
    node.className = "turn";
    node.dataset.commandId = commandId;
    const question = document.createElement("p");
    question.className = "prompt";
    const answer = document.createElement("div");
    answer.className = "assistant-message";
    answer.dataset.testid = "assistant-message";
    answer.style.whiteSpace = "pre-wrap";
    node.append(question, answer);
    messages.append(node);
    turn = { node, question, answer };
    turns.set(commandId, turn);
  }
  if (prompt) turn.question.textContent = prompt;
  return turn;
}

function applyResult(result) {
  if (result.sessionId !== sessionId || result.seq <= lastSeq) return;
  lastSeq = result.seq;
  const turn = turnFor(result.commandId);
  if (result.response) turn.answer.append(result.response);
  if (result.status !== "streaming") turn.node.dataset.state = finalState(result.error);
}

async function loadPrompts() {
  // The link's own page lists its session's prompts (no login needed for this one session).
  const reply = await fetch(`${location.pathname}/commands`, { credentials: "same-origin" });
  if (!reply.ok) return;
  for (const command of await reply.json()) turnFor(command.commandId, command.text);
}

const socket = window.io("/web", {
  transports: ["websocket"],
  auth: { link: root.dataset.linkToken },
});
socket.on("connect", () => {
  showConnection("connected", "Live");
  socket.emit(EVENTS.SUBSCRIBE, { type: EVENTS.SUBSCRIBE, sessionId, afterSeq: lastSeq }, () => {});
});
socket.on("disconnect", (reason) => {
  showConnection("disconnected", "Disconnected");
  if (reason === "io server disconnect") {
    // The server closed it on purpose: the link was revoked or has expired.
    root.querySelector("[data-testid=link-ended]").hidden = false;
  }
});
socket.on("connect_error", () => showConnection("disconnected", "Link not valid"));
socket.on(EVENTS.COMMAND_STATE, (message) => {
  if (message.sessionId === sessionId && message.text) turnFor(message.commandId, message.text);
});
socket.on(EVENTS.COMMAND_RESULT, applyResult);
loadPrompts();
