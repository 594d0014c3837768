/* Tether dashboard (and the account and sharing pages): agents' online state and version, live
 * from agent_status; confirm buttons; copy buttons. An ES module. */
import { EVENTS } from "./generated/protocol.js";
import { connect } from "./lib/connection.js";

/** Every element showing an agent: its own row, and each shared project on it. */
function agentNodes(agentId) {
  return [...document.querySelectorAll(".agent[data-agent-id]")].filter((n) => n.dataset.agentId === agentId);
}

// An agent that connects with another version than the server's wheel shows how to update it.
function showAgentVersion(node, message) {
  if (!message.online || !("version" in message)) return;
  const list = node.closest("[data-server-version]");
  const version = message.version || "";
  node.dataset.agentVersion = version;
  const update = node.querySelector(".agent-update");
  if (update && list) update.hidden = version === list.dataset.serverVersion;
  const shown = node.querySelector(".agent-version");
  if (shown) shown.textContent = version || "unknown";
}

function showStatusOn(node, message) {
  showAgentVersion(node, message);
  const word = message.online ? "online" : "offline";
  const changed = node.dataset.agentStatus !== word;
  node.dataset.agentStatus = word;
  const label = node.querySelector(".state");
  if (label && label.textContent !== word) label.textContent = word;
  // The rendered "never connected" / "last seen ..." line is stale after a change.
  const detail = node.querySelector(".agent-detail");
  if (changed && detail) {
    const where = message.hostname || detail.dataset.hostname;
    const when = message.online ? "connected just now" : "last seen just now";
    detail.textContent = where ? `${where} · ${when}` : when;
  }
}

function showAgentStatus(message) {
  if (message) agentNodes(message.agentId).forEach((node) => showStatusOn(node, message));
}

// Confirm destructive forms (revoke, new token, sign out everywhere) before they post.
document.addEventListener("submit", (event) => {
  const question = event.target.dataset && event.target.dataset.confirm;
  if (question && !window.confirm(question)) event.preventDefault();
});

// Copy buttons next to commands and links.
document.addEventListener("click", async (event) => {
  const button = event.target.closest("[data-copy-target]");
  if (!button) return;
  const source = document.getElementById(button.dataset.copyTarget);
  if (!source) return;
  try {
    await navigator.clipboard.writeText(source.textContent.trim());
    button.textContent = "Copied";
  } catch (error) {
    const range = document.createRange(); // no clipboard (plain http): select it instead
    range.selectNodeContents(source);
    const selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
    button.textContent = "Press Ctrl+C";
  }
  setTimeout(() => (button.textContent = "Copy"), 2000);
});

// Pages without live state (account, sharing) open no socket.
if (document.querySelector("[data-testid=connection-status]")) {
  const socket = connect();
  if (socket) socket.on(EVENTS.AGENT_STATUS, showAgentStatus);
}
