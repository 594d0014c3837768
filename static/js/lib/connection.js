/* The /web Socket.IO connection, with every [data-testid=connection-status]
 * on the page kept true to its state (ES module).
 *
 * - connect(): open the socket; the indicator follows it.
 * - onConnectionChange(listener): called now and on every change.
 * - emit(): an event with an acknowledgement, as a promise.
 */
import { EVENTS } from "../generated/protocol.js";

const STATE_LABELS = {
  connected: "Connected",
  connecting: "Connecting…",
  disconnected: "Disconnected",
};

const listeners = new Set();
let current = { state: "connecting", detail: "", refused: false };

function setConnectionState(state, detail, refused) {
  current = { state, detail: detail || "", refused: Boolean(refused) };
  for (const node of document.querySelectorAll("[data-testid=connection-status]")) {
    node.dataset.state = state;
    const label = node.querySelector(".label") || node;
    label.textContent = STATE_LABELS[state];
    node.title = current.detail || STATE_LABELS[state];
  }
  for (const listener of listeners) listener(state, current);
}

/**
 * Open the /web namespace with the session cookie. The indicator follows
 * connect / disconnect / reconnect attempts; a refusal by the server (not
 * signed in any more) is shown as such and not retried in a loop.
 */
let pageSocket = null; // one socket per page, whatever module asks for it

export function connect() {
  if (pageSocket) return pageSocket;
  if (typeof window.io !== "function") {
    setConnectionState("disconnected", "The Socket.IO client did not load.");
    return null;
  }
  const socket = window.io("/web", {
    withCredentials: true,
    reconnectionDelay: 500,
    reconnectionDelayMax: 5000,
  });
  const manager = socket.io;

  socket.on("connect", () => setConnectionState("connected"));
  socket.on("disconnect", (reason) => {
    setConnectionState("disconnected", "Connection lost; reconnecting.");
    // The server closed us on purpose (e.g. we fell behind): the client
    // does not retry by itself in that case, so come back after a pause.
    if (reason === "io server disconnect") setTimeout(() => socket.connect(), 1000);
  });
  socket.on("connect_error", () => {
    if (!socket.active) {
      // Refused by the server itself: the session cookie is gone or invalid.
      setConnectionState("disconnected", "You are signed out. Sign in again.", true);
    } else {
      setConnectionState("disconnected", "Cannot reach the server; retrying.");
    }
  });
  manager.on("reconnect_attempt", () => setConnectionState("connecting"));
  manager.on("reconnect_error", () => setConnectionState("disconnected", "Cannot reach the server; retrying."));
  manager.on("reconnect_failed", () => setConnectionState("disconnected", "Cannot reach the server."));

  // The browser knows it is offline long before a ping times out.
  window.addEventListener("offline", () => {
    if (manager.engine) manager.engine.close();
  });
  window.addEventListener("online", () => {
    if (!socket.connected) socket.connect();
  });
  pageSocket = socket;
  return socket;
}

/** Called with (state, {detail, refused}) now and on every change of the connection. */
export function onConnectionChange(listener) {
  listeners.add(listener);
  listener(current.state, current);
}

/**
 * Emit an event and wait for its acknowledgement. Resolves with the ack
 * ({ok: true, ...} or {ok: false, error}); rejects if no ack arrives within
 * `timeout` ms or the connection drops first.
 */
export function emit(socket, event, payload, timeout = 8000) {
  if (!Object.values(EVENTS).includes(event)) throw new Error(`unknown event ${event}`);
  return new Promise((resolve, reject) => {
    socket.timeout(timeout).emit(event, { type: event, ...payload }, (err, ack) => {
      if (err) reject(err);
      else resolve(ack || { ok: false, error: { code: "internal", message: "empty answer" } });
    });
  });
}
