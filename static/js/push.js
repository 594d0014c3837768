/* Web Push in the page, on every signed-in page.
 *
 * - registers the service worker (/sw.js, scope "/"): it shows pushes and the chat
 *   page's own notifications, and opens the session on a click;
 * - the account page's buttons: enable notifications on this browser (ask the
 *   permission, subscribe with the server's VAPID key, POST the subscription),
 *   disable them, and send a test notification;
 * - signing out first forgets this browser's subscription, so that the next
 *   person on this browser does not get the previous user's notifications.
 */

const supported = "serviceWorker" in navigator && "PushManager" in window && "Notification" in window;

function csrfToken() {
  const meta = document.querySelector("meta[name=csrf-token]");
  return meta ? meta.content : "";
}

/** A JSON request to our own server: {ok, status, answer}. */
async function api(method, url, body) {
  const response = await fetch(url, {
    method,
    credentials: "same-origin",
    headers: { Accept: "application/json", "Content-Type": "application/json", "X-CSRFToken": csrfToken() },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  let answer = null;
  try {
    answer = await response.json();
  } catch (error) {
    // not JSON (an error page): the status says enough
  }
  return { ok: response.ok, status: response.status, answer };
}

function failure(result, fallback) {
  const error = result.answer && result.answer.error;
  return new Error((error && error.message) || `${fallback} (HTTP ${result.status})`);
}

function base64UrlBytes(text) {
  const base64 = (text + "===".slice((text.length + 3) % 4)).replace(/-/g, "+").replace(/_/g, "/");
  return Uint8Array.from(atob(base64), (c) => c.charCodeAt(0));
}

function sameBytes(buffer, bytes) {
  if (!buffer) return false;
  const view = new Uint8Array(buffer);
  return view.length === bytes.length && view.every((byte, i) => byte === bytes[i]);
}

const ready = supported
  ? navigator.serviceWorker.register("/sw.js", { scope: "/" }).then(() => navigator.serviceWorker.ready)
  : Promise.reject(new Error("unsupported"));
ready.catch(() => {}); // reported by whoever needs it

async function currentSubscription() {
  const registration = await ready;
  return registration.pushManager.getSubscription();
}

/** Ask the permission, subscribe this browser with the server's key and give the subscription to the server. */
async function enable() {
  if ((await Notification.requestPermission()) !== "granted") {
    throw new Error("Notifications are blocked for this site: allow them in the browser's site settings.");
  }
  const registration = await ready;
  const key = await api("GET", "/push/key");
  if (!key.ok) throw failure(key, "The server's key could not be read");
  const serverKey = base64UrlBytes(key.answer.publicKey);
  let subscription = await registration.pushManager.getSubscription();
  if (subscription && !sameBytes(subscription.options.applicationServerKey, serverKey)) {
    await subscription.unsubscribe(); // made with another server key: useless now
    subscription = null;
  }
  subscription =
    subscription ||
    (await registration.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: serverKey }));
  const saved = await api("POST", "/push/subscriptions", subscription.toJSON());
  if (!saved.ok) throw failure(saved, "The server refused this browser's subscription");
}

async function disable() {
  const subscription = await currentSubscription();
  if (!subscription) return;
  await api("DELETE", "/push/subscriptions", subscription.toJSON());
  await subscription.unsubscribe();
}

// -- the account page ------------------------------------------------------------------------

function accountPage(section) {
  const status = section.querySelector("[data-testid=push-status]");
  const message = section.querySelector("[data-testid=push-message]");
  const buttons = {
    enable: section.querySelector("[data-testid=push-enable]"),
    disable: section.querySelector("[data-testid=push-disable]"),
    test: section.querySelector("[data-testid=push-test]"),
  };

  function say(text, isError) {
    message.textContent = text;
    message.classList.toggle("error", Boolean(isError));
    message.hidden = !text;
  }

  async function showState() {
    let state = "off";
    if (!supported) state = "unsupported";
    else if (Notification.permission === "denied") state = "blocked";
    else if (await currentSubscription().catch(() => null)) state = "on";
    status.dataset.state = state;
    status.textContent = {
      on: "Notifications are on for this browser.",
      off: "Notifications are off for this browser.",
      blocked: "Notifications are blocked for this site in this browser's settings.",
      unsupported: "This browser cannot receive notifications from this page (it needs HTTPS).",
    }[state];
    buttons.enable.hidden = state === "on" || state === "unsupported";
    buttons.disable.hidden = state !== "on";
  }

  async function run(button, action, done) {
    button.disabled = true;
    say("");
    try {
      say(done(await action()));
    } catch (error) {
      say(error.message || String(error), true);
    } finally {
      button.disabled = false;
      await showState();
    }
  }

  async function test() {
    const result = await api("POST", "/push/test");
    if (!result.ok) throw failure(result, "The test notification was not sent");
    return result.answer.browsers;
  }

  buttons.enable.addEventListener("click", () => run(buttons.enable, enable, () => "This browser will be notified."));
  buttons.disable.addEventListener("click", () =>
    run(buttons.disable, disable, () => "This browser will not be notified."),
  );
  buttons.test.addEventListener("click", () =>
    run(buttons.test, test, (browsers) =>
      browsers === 1
        ? "Test notification sent to your browser: it should appear in a moment."
        : `Test notification sent to your ${browsers} browsers: it should appear in a moment.`,
    ),
  );
  showState();
}

const section = document.querySelector("[data-testid=push-settings]");
if (section) accountPage(section);

// -- signing out ------------------------------------------------------------------------------

document.addEventListener("submit", (event) => {
  const form = event.target;
  if (!supported || !form.matches || !form.matches("form[data-sign-out]") || event.defaultPrevented) return;
  event.preventDefault();
  const giveUp = new Promise((resolve) => setTimeout(resolve, 3000));
  Promise.race([disable().catch(() => {}), giveUp]).then(() => form.submit());
});
