/* Telling the user: the assertive live region, and desktop notifications while the tab is hidden. */

const NOTIFY_ASKED = "tether.notificationsAsked";

export function announce(announcer, text) {
  announcer.textContent = "";
  // A change after a tick is announced even when the text repeats.
  setTimeout(() => (announcer.textContent = text), 50);
}

/** Ask once, from a user gesture (the first send), for permission to notify. */
export function askNotificationPermission() {
  if (!("Notification" in window) || Notification.permission !== "default") return;
  try {
    if (localStorage.getItem(NOTIFY_ASKED)) return;
    localStorage.setItem(NOTIFY_ASKED, "1");
  } catch (error) {
    // Storage refused: ask anyway, the browser remembers the answer.
  }
  Notification.requestPermission().catch(() => {});
}

/** Notify while the tab is hidden; true when a notification was asked for. */
export function notify(title, body, sessionId) {
  if (!document.hidden || !("Notification" in window) || Notification.permission !== "granted") return false;
  // Through the service worker (static/sw.js) when there is one: its click opens this session, and
  // the tag is the session id, like a Web Push about it, so the two make one notification.
  const options = { body, tag: sessionId || "tether-new", data: { url: window.location.href } };
  const worker = "serviceWorker" in navigator ? navigator.serviceWorker.getRegistration() : Promise.resolve(null);
  worker
    .then((registration) => (registration ? registration.showNotification(title, options) : Promise.reject()))
    .catch(() => {
      try {
        const n = new Notification(title, options);
        n.onclick = () => {
          window.focus();
          n.close();
        };
      } catch (error) {
        // Some browsers only notify from a service worker; nothing else to do.
      }
    });
  return true;
}
