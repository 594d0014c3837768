/* Tether's service worker, served at /sw.js with scope "/".
 *
 * - push: the server's message is JSON {title, body, url, tag} (tag: the session id).
 *   It is shown as a notification, unless a page of this browser is visible on that
 *   very session: the user is looking at it already. One tag, one notification: a
 *   newer message about a session replaces the older one.
 * - notificationclick: focus a page that has the session open, or open one.
 *
 * The chat page's own notifications (shown while its tab is hidden) come through
 * here too (registration.showNotification), so a click on them does the same.
 */
"use strict";

const TEST_TAG = "tether-test";

self.addEventListener("install", () => self.skipWaiting());
self.addEventListener("activate", (event) => event.waitUntil(self.clients.claim()));

/** A URL of our own origin ("/" for anything else). */
function ownUrl(url) {
  try {
    const target = new URL(url || "/", self.location.origin);
    return target.origin === self.location.origin ? target : new URL("/", self.location.origin);
  } catch (error) {
    return new URL("/", self.location.origin);
  }
}

/** True if a window at `clientUrl` shows what `url` opens (the same page, the same ?session=). */
function showsSameThing(clientUrl, url) {
  const page = new URL(clientUrl);
  return page.pathname === url.pathname && page.searchParams.get("session") === url.searchParams.get("session");
}

function windows() {
  return self.clients.matchAll({ type: "window", includeUncontrolled: true });
}

function readMessage(data) {
  try {
    const message = data ? data.json() : null;
    return message && typeof message === "object" ? message : {};
  } catch (error) {
    return { body: data ? data.text() : "" };
  }
}

async function showPush(message) {
  const url = ownUrl(message.url);
  const tag = typeof message.tag === "string" ? message.tag : "";
  if (tag !== TEST_TAG) {
    const open = await windows();
    if (open.some((client) => client.visibilityState === "visible" && showsSameThing(client.url, url))) return;
  }
  const title = typeof message.title === "string" && message.title ? message.title : "Tether";
  await self.registration.showNotification(title, {
    body: typeof message.body === "string" ? message.body : "",
    tag: tag || undefined,
    data: { url: url.href },
  });
}

self.addEventListener("push", (event) => {
  event.waitUntil(showPush(readMessage(event.data)));
});

async function openOrFocus(url) {
  const open = await windows();
  const same = open.find((client) => showsSameThing(client.url, url));
  if (same) return same.focus();
  return self.clients.openWindow(url.href);
}

self.addEventListener("notificationclick", (event) => {
  event.notification.close();
  const data = event.notification.data || {};
  event.waitUntil(openOrFocus(ownUrl(data.url)));
});
