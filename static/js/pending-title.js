/* Tether chat page: a pending permission shows in the tab's title and icon.
 *
 * In a background tab the title reads "(1) Approval needed · …" and the icon
 * gets an orange dot, for as long as a permission request is on the page
 * ([data-testid=permission-request], the contract's hook). It watches the page
 * rather than the socket, so it needs nothing from the chat page's own code.
 */
(function () {
  "use strict";

  const messages = document.querySelector("[data-testid=messages]");
  if (!messages) return;

  const PREFIX = /^\(\d+\) Approval needed · /;
  const REQUEST = "[data-testid=permission-request]";
  const ALERT_ICON =
    "data:image/svg+xml,%3Csvg xmlns='http://www.w3.org/2000/svg' viewBox='0 0 16 16'%3E" +
    "%3Crect width='16' height='16' rx='4' fill='%232f5fd0'/%3E" +
    "%3Ccircle cx='12' cy='4' r='4' fill='%23f59e0b' stroke='%23ffffff' stroke-width='1.5'/%3E%3C/svg%3E";
  const icon = document.querySelector("link[rel=icon]");
  const plainIcon = icon ? icon.getAttribute("href") : null;
  let shown = -1;

  function update() {
    const count = messages.querySelectorAll(REQUEST).length;
    if (count === shown && PREFIX.test(document.title) === count > 0) return;
    shown = count;
    const plain = document.title.replace(PREFIX, ""); // the page may have changed its title meanwhile
    document.title = count ? `(${count}) Approval needed · ${plain}` : plain;
    if (icon) icon.setAttribute("href", count ? ALERT_ICON : plainIcon);
    document.documentElement.dataset.pendingPermissions = String(count);
  }

  /** Only additions and removals that are, or hold, a permission request matter (not streamed text). */
  function touchesRequests(records) {
    return records.some((record) =>
      [...record.addedNodes, ...record.removedNodes].some(
        (node) => node.nodeType === 1 && (node.matches(REQUEST) || node.querySelector(REQUEST)),
      ),
    );
  }

  new MutationObserver((records) => {
    if (touchesRequests(records)) update();
  }).observe(messages, { childList: true, subtree: true });
  update();
})();
