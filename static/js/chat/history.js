/* A session's turns from the server, a page at a time: the last ones on opening it, older ones as
 * the reader scrolls up (GET /api/sessions/<id>/turns, docs/protocol.md). */
import { fetchJSON } from "../lib/dom.js";

const PRELOAD_PX = 800; // start loading older turns this far before the reader reaches the top

/** A page of turns: the last ones, or those before `before` (a command id); `results: false` for states only. */
export function fetchTurns(sessionId, { before, limit, results = true } = {}) {
  const query = new URLSearchParams();
  if (before) query.set("before", before);
  if (limit) query.set("limit", String(limit));
  if (!results) query.set("results", "0");
  const suffix = query.toString() ? `?${query}` : "";
  return fetchJSON(`/api/sessions/${encodeURIComponent(sessionId)}/turns${suffix}`);
}

/** Loads older turns when the top of the conversation comes near, or on its button. */
export class OlderTurns {
  constructor({ scroller, box, load }) {
    Object.assign(this, { scroller, box, load });
    this.available = false;
    this.loading = false;
    this.near = false; // the top is within PRELOAD_PX of the view (as the observer last said)
    this.button = box.querySelector("button");
    this.button.addEventListener("click", () => this.loadNow());
    if (window.IntersectionObserver) {
      const observer = new IntersectionObserver(
        (entries) => {
          this.near = entries[entries.length - 1].isIntersecting;
          if (this.near) this.loadNow();
        },
        { root: scroller, rootMargin: `${PRELOAD_PX}px 0px 0px 0px` },
      );
      observer.observe(box);
    }
  }

  /** Whether the server has turns above those shown. */
  set(available) {
    this.available = Boolean(available);
    this.box.hidden = !this.available;
    // Turns that do not fill the view leave the top in reach, and the observer says
    // nothing more: look again once it has seen the page with them (a frame, then its news).
    if (this.available) requestAnimationFrame(() => setTimeout(() => this.near && this.loadNow()));
  }

  async loadNow() {
    if (!this.available || this.loading) return;
    this.loading = true;
    this.button.disabled = true;
    try {
      const more = await this.load(); // null: another session was opened meanwhile
      if (more !== null) this.set(more);
    } catch (error) {
      // Left as it was: the next scroll or click tries again.
    } finally {
      this.loading = false;
      this.button.disabled = false;
    }
  }
}
