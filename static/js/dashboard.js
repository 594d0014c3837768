/* Tether dashboard: agents' online state, live from agent_status. */
(function () {
  "use strict";

  function findAgent(agentId) {
    for (const node of document.querySelectorAll(".agent[data-agent-id]")) {
      if (node.dataset.agentId === agentId) return node;
    }
    return null;
  }

  function showAgentStatus(message) {
    const node = message && findAgent(message.agentId);
    if (!node) return;
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

  // Confirm destructive forms (revoke, new token) before they post.
  document.addEventListener("submit", (event) => {
    const question = event.target.dataset && event.target.dataset.confirm;
    if (question && !window.confirm(question)) event.preventDefault();
  });

  // Copy buttons next to the start command.
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

  const socket = window.Tether.connect();
  if (socket) socket.on("agent_status", showAgentStatus);
})();
