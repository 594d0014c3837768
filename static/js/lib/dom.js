/* Small DOM, fetch and formatting helpers shared by the pages (ES module).
 *
 * No framework and no inline script: the pages run under a strict CSP
 * (script-src 'self'), which ES modules loaded from our own origin satisfy.
 */

/** Build an element: el("a", {href: "/", class: "x", dataset: {id: 1}}, "text", child). */
export function el(tag, attrs, ...children) {
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
export function uuid() {
  if (window.crypto && typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** GET a JSON endpoint of our own server; rejects on any non-JSON or non-2xx answer. */
export async function fetchJSON(url) {
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

/** POST JSON with the page's CSRF token; resolves with the Response. */
export function postJSON(url, body) {
  const meta = document.querySelector("meta[name=csrf-token]");
  return fetch(url, {
    method: "POST",
    credentials: "same-origin",
    headers: { "Content-Type": "application/json", "X-CSRFToken": meta ? meta.content : "" },
    body: JSON.stringify(body),
  });
}

/** "3 min ago" for an ISO timestamp. */
export function relativeTime(iso) {
  const then = Date.parse(iso);
  if (Number.isNaN(then)) return "";
  const seconds = Math.max(0, (Date.now() - then) / 1000);
  if (seconds < 45) return "just now";
  if (seconds < 3600) return `${Math.round(seconds / 60)} min ago`;
  if (seconds < 86400) return `${Math.round(seconds / 3600)} h ago`;
  if (seconds < 86400 * 7) return `${Math.round(seconds / 86400)} d ago`;
  return new Date(then).toLocaleDateString();
}

/** The text of an error answer, for people. */
export function errorText(error, fallback) {
  if (error && typeof error.message === "string" && error.message) return error.message;
  return fallback || "Something went wrong.";
}

/** "12 KB" for a number of bytes (binary units, as the limits are written). */
export function formatBytes(bytes) {
  if (typeof bytes !== "number" || Number.isNaN(bytes)) return "";
  if (bytes < 1024) return `${bytes} B`;
  const units = ["KB", "MB", "GB"];
  let value = bytes / 1024;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${value < 10 ? value.toFixed(1).replace(/\.0$/, "") : Math.round(value)} ${units[unit]}`;
}
