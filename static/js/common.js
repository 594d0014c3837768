/* Tether: helpers shared by the dashboard and the chat page.
 *
 * - Tether.connect(): the /web Socket.IO connection, with every
 *   [data-testid=connection-status] on the page kept true to its state.
 * - Tether.emit(): an event with an acknowledgement, as a promise.
 * - small DOM, fetch and formatting helpers.
 *
 * No framework and no inline script: the pages run under a strict CSP.
 */
(function () {
  "use strict";

  const STATE_LABELS = {
    connected: "Connected",
    connecting: "Connecting…",
    disconnected: "Disconnected",
  };

  /** Build an element: el("a", {href: "/", class: "x", dataset: {id: 1}}, "text", child). */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === null || value === undefined || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key === "text") node.textContent = value;
      else if (key.startsWith("on") && typeof value === "function") {
        node.addEventListener(key.slice(2), value);
      } else node.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat()) {
      if (child === null || child === undefined || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  /** A random id; crypto.randomUUID exists only in secure contexts (https, localhost). */
  function uuid() {
    if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
    const bytes = crypto.getRandomValues(new Uint8Array(16));
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  /** GET a JSON endpoint of our own server; rejects on any non-JSON or non-2xx answer. */
  async function fetchJSON(url) {
    const response = await fetch(url, {
      credentials: "same-origin",
      headers: { Accept: "application/json" },
    });
    const type = response.headers.get("Content-Type") || "";
    if (!response.ok || !type.includes("application/json")) {
      throw new Error(`${url}: HTTP ${response.status}`);
    }
    return response.json();
  }

  /** "3 min ago" for an ISO timestamp. */
  function relativeTime(iso) {
    const then = Date.parse(iso);
    if (Number.isNaN(then)) return "";
    const seconds = Math.max(0, (Date.now() - then) / 1000);
    if (seconds < 45) return "just now";
    if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
    if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
    if (seconds < 86400 * 7) return `${Math.round(seconds / 86400)} d ago`;
    return new Date(then).toLocaleDateString();
  }

  // -- the connection --------------------------------------------------------

  const listeners = new Set();
  let currentState = "connecting";
  let currentDetail = "";
  let refused = false;

  function setConnectionState(state, detail, isRefusal) {
    currentState = state;
    currentDetail = detail || "";
    refused = Boolean(isRefusal);
    for (const node of document.querySelectorAll("[data-testid=connection-status]")) {
      node.dataset.state = state;
      const label = node.querySelector(".label") || node;
      label.textContent = STATE_LABELS[state];
      node.title = currentDetail || STATE_LABELS[state];
    }
    for (const listener of listeners) listener(state, { detail: currentDetail, refused });
  }

  /**
   * Open the /web namespace with the session cookie. The indicator follows
   * connect / disconnect / reconnect attempts; a refusal by the server (not
   * signed in any more) is shown as such and not retried in a loop.
   */
  function connect() {
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
    manager.on("reconnect_error", () =>
      setConnectionState("disconnected", "Cannot reach the server; retrying."),
    );
    manager.on("reconnect_failed", () =>
      setConnectionState("disconnected", "Cannot reach the server."),
    );

    // The browser knows it is offline long before a ping times out.
    window.addEventListener("offline", () => {
      if (manager.engine) manager.engine.close();
    });
    window.addEventListener("online", () => {
      if (!socket.connected) socket.connect();
    });
    return socket;
  }

  /** Called with (state, {detail, refused}) now and on every change of the connection. */
  function onConnectionChange(listener) {
    listeners.add(listener);
    listener(currentState, { detail: currentDetail, refused });
  }

  /**
   * Emit an event and wait for its acknowledgement. Resolves with the ack
   * ({ok: true, ...} or {ok: false, error}); rejects if no ack arrives within
   * `timeout` ms or the connection drops first.
   */
  function emit(socket, event, payload, timeout = 8000) {
    return new Promise((resolve, reject) => {
      socket.timeout(timeout).emit(event, { type: event, ...payload }, (err, ack) => {
        if (err) reject(err);
        else resolve(ack || { ok: false, error: { code: "internal", message: "empty answer" } });
      });
    });
  }

  /** The text of an error answer, for people. */
  function errorText(error, fallback) {
    if (error && typeof error.message === "string" && error.message) return error.message;
    return fallback || "Something went wrong.";
  }

  window.Tether = {
    el,
    uuid,
    fetchJSON,
    relativeTime,
    connect,
    onConnectionChange,
    emit,
    errorText,
  };
})();
