/* Markdown for answers that stream in, at a cost that grows with the answer, not with its square.
 *
 * An answer's text is cut into Markdown blocks (marked's lexer). A block is
 * finished once the next one has started, or at once for a fenced code block
 * whose closing fence has arrived: finished blocks are rendered (marked, then
 * DOMPurify, then highlight.js) exactly once and never touched again. Only the
 * open block at the end (the "tail") is shown again as text arrives:
 *
 * - a small tail is rendered as Markdown again, as often as that costs at most
 *   a fifth of the time; in between, new text is appended as plain text where
 *   the tail's last text is, so every word is on screen in the frame it arrives;
 * - a tail bigger than LIVE_LIMIT (a huge paragraph or code block) is shown as
 *   plain text, appended in pieces (CHUNK) that the browser lays out apart, and
 *   formatted once it is finished (if it is not bigger than FORMAT_LIMIT).
 *
 * The rendered blocks are the segment element's own children, as a whole
 * render would make them: renderMarkdown(text) gives the same nodes at once.
 */
import { el } from "../lib/dom.js";

const LIVE_LIMIT = 4 * 1024; // an open block up to this size is re-rendered as Markdown
const FORMAT_LIMIT = 32 * 1024; // a bigger block stays plain text: formatting it would stall the page
const STEP = 8 * 1024; // text taken in at a time, so that one frame can stop between steps
const CHUNK = 1024; // plain text is laid out in pieces of about this size (1 to 4 KB)
const HIGHLIGHT_LIMIT = 20000; // longer code is left plain: highlighting it takes too long
const RENDER_SHARE = 5; // the open block is rendered again after 5x the time its last render took
const VOID = new Set(["HR", "BR", "IMG", "INPUT", "WBR"]);
const FENCE = /^ {0,3}(`{3,}|~{3,})/;

let engine; // marked, DOMPurify and highlight.js, configured once (null when they did not load)

export function markdownEngine() {
  if (engine !== undefined) return engine;
  const { marked, DOMPurify, hljs } = window;
  if (!marked || typeof marked.Marked !== "function" || !DOMPurify || !DOMPurify.sanitize) {
    engine = null;
    return engine;
  }
  const escape = (text) =>
    text.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
  // Raw HTML in an answer is shown as text: it is usually code being discussed.
  const parser = new marked.Marked({ gfm: true, breaks: false, renderer: { html: ({ text }) => escape(text) } });
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName === "A" && node.getAttribute("href")) {
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
  if (hljs) hljs.configure({ ignoreUnescapedHTML: true });
  const purify = {
    FORBID_TAGS: ["style", "img", "form", "button", "textarea", "select", "iframe"],
    FORBID_ATTR: ["style"],
    RETURN_DOM_FRAGMENT: true,
  };
  engine = {
    lex: (text) => parser.lexer(text),
    /** Sanitised nodes of some tokens, as a DocumentFragment; code highlighted unless told not to. */
    render(tokens, highlighted = true) {
      const fragment = DOMPurify.sanitize(parser.parser(tokens), purify);
      if (highlighted) highlight(fragment);
      return fragment;
    },
  };
  return engine;
}

function highlight(container) {
  const { hljs } = window;
  if (!hljs) return;
  for (const code of container.querySelectorAll("pre code")) {
    const lang = [...code.classList].find((c) => c.startsWith("language-"));
    if (code.textContent.length > HIGHLIGHT_LIMIT || (lang && !hljs.getLanguage(lang.slice(9)))) {
      if (lang) code.classList.remove(lang); // unknown language: plain, without a console warning
      code.classList.add("hljs");
      continue;
    }
    hljs.highlightElement(code);
  }
}

/**
 * Run the whole pipeline once on a little Markdown, so that the first real answer does not pay
 * for compiling marked, DOMPurify and highlight.js (tens of milliseconds on a phone): called
 * while the first page of turns is on its way.
 */
export function warmUp() {
  const markdown = markdownEngine();
  if (markdown) markdown.render(markdown.lex("# A\n\n**b** `c` [d](https://e.org)\n\n- f\n\n```js\nlet g = 1;\n```\n\n| h |\n|---|\n| i |\n"));
}

/** The whole of `text` rendered at once (what a finished stream of it looks like), as a fragment. */
export function renderMarkdown(text) {
  const markdown = markdownEngine();
  if (!markdown) return document.createTextNode(text);
  return markdown.render(markdown.lex(normalize(text)));
}

function normalize(text) {
  return text.replace(/\r\n?/g, "\n"); // as marked does; block sizes are counted on this text
}

/** A fenced code block's opening fence, when `raw` starts with one. */
function openingFence(raw) {
  const match = FENCE.exec(raw);
  return match ? { char: match[1][0], length: match[1].length } : null;
}

/** True if `line` closes the fence (same character, at least as long, nothing after it). */
function closesFence(line, fence) {
  const match = /^ {0,3}(`{3,}|~{3,})[ \t]*$/.exec(line);
  return Boolean(match && match[1][0] === fence.char && match[1].length >= fence.length);
}

function isClosedFence(token) {
  if (token.type !== "code") return false;
  const fence = openingFence(token.raw);
  if (!fence) return false;
  const lines = token.raw.replace(/\n+$/, "").split("\n");
  return lines.length > 1 && closesFence(lines[lines.length - 1], fence);
}

/** One run of answer text (between tool calls) rendered into `root` as it streams. */
export class MarkdownStream {
  constructor(root) {
    this.root = root;
    this.engine = markdownEngine();
    this.pending = ""; // received, not taken in yet
    this.tail = ""; // source of the open block(s), after the last finished one
    this.unshown = ""; // end of the tail that is not on screen yet
    this.lastFrozen = null; // the last node of the finished blocks; the tail's nodes follow it
    this.lexedAt = 0; // length of the tail's complete lines when they were last cut into blocks
    this.fence = null; // the tail is an open fenced code block: {char, length, line}
    this.plain = null; // the tail shown as plain text: {box, text, length}
    this.growth = null; // text node that takes new text between two renders of the tail
    this.renderedAt = -Infinity;
    this.renderCost = 0;
    this.carriage = false; // the last text ended with "\r" (a "\r\n" may be split in two)
    this.finishing = false;
    this.finished = false;
  }

  /** More text of the answer; shown by the next flush(). */
  append(text) {
    if (!text) return;
    if (this.carriage && text[0] === "\n") text = text.slice(1);
    this.carriage = text.endsWith("\r");
    this.pending += normalize(text);
    // Text after the end: the command was reopened (late output of a lost agent).
    this.finishing = false;
    this.finished = false;
  }

  /** The text is complete: the next flush() formats the last block too. */
  finish() {
    this.finishing = true;
  }

  /** Characters received and not taken in yet. */
  get backlog() {
    return this.pending.length;
  }

  get idle() {
    return !this.pending && (this.finished || !this.finishing);
  }

  /**
   * Take in what arrived and show it. Stops between steps once `deadline`
   * (a performance.now() time) has passed; returns true if work is left.
   */
  flush(deadline = Infinity) {
    while (this.pending) {
      const piece = this.pending.length > STEP ? this.pending.slice(0, STEP) : this.pending;
      this.pending = this.pending.slice(piece.length);
      this.take(piece);
      if (this.pending && performance.now() > deadline) break;
    }
    if (!this.pending && this.finishing && !this.finished) this.finalize();
    else this.showTail();
    return !this.idle;
  }

  // -- cutting the text into blocks --------------------------------------------------

  take(piece) {
    const before = this.tail.length;
    this.tail += piece;
    this.unshown += piece;
    if (!this.engine) return;
    if (this.fence) {
      this.scanFence(piece);
      return;
    }
    const newline = piece.lastIndexOf("\n");
    if (newline < 0) return; // no new complete line: no block can have ended
    const end = before + newline + 1;
    // Cutting a big tail again only once it has grown by half keeps the cost linear.
    if (end <= LIVE_LIMIT || end >= this.lexedAt * 1.5) this.freeze(end);
  }

  /** Cut the complete lines of the tail (up to `end`) into blocks; render the finished ones. */
  freeze(end) {
    const tokens = this.engine.lex(this.tail.slice(0, end));
    let open = tokens.length - 1;
    while (open >= 0 && tokens[open].type === "space") open -= 1;
    // The last block may still grow (a list, a table, a paragraph), unless it is a closed fence.
    const finished = open < 0 || isClosedFence(tokens[open]) ? tokens.length : open;
    const consumed = tokens.slice(0, finished).reduce((sum, token) => sum + token.raw.length, 0);
    if (consumed) this.render(tokens.slice(0, finished), consumed);
    this.lexedAt = end - consumed;
    const rest = tokens[finished];
    const fence = rest && rest.type === "code" && openingFence(rest.raw);
    // Until its closing fence, a code block only grows: from now on look for that line alone.
    if (fence) this.fence = { ...fence, line: this.tail.slice(this.lexedAt) };
  }

  /** Look at the lines `piece` completes in an open code block for its closing fence. */
  scanFence(piece) {
    const text = this.fence.line + piece; // the end of the tail, from the start of a line
    const last = text.lastIndexOf("\n");
    let start = 0;
    while (start <= last) {
      const stop = text.indexOf("\n", start);
      if (closesFence(text.slice(start, stop), this.fence)) {
        this.fence = null;
        this.lexedAt = 0;
        // The code block and whatever complete lines follow it.
        this.freeze(this.tail.length - text.length + last + 1);
        return;
      }
      start = stop + 1;
    }
    this.fence.line = text.slice(last + 1);
  }

  /** Render finished blocks (`size` characters at the start of the tail) once, for good. */
  render(tokens, size) {
    const fragment = document.createDocumentFragment();
    let run = []; // blocks rendered together: one sanitising pass for all of them
    for (const token of tokens) {
      if (token.raw.length <= FORMAT_LIMIT) {
        run.push(token);
        continue;
      }
      if (run.length) fragment.append(this.engine.render(run));
      run = [];
      fragment.append(plainBlock(token.raw));
    }
    if (run.length) fragment.append(this.engine.render(run));
    const last = fragment.lastChild;
    this.clearTail();
    this.root.append(fragment);
    if (last) this.lastFrozen = last;
    this.tail = this.tail.slice(size);
    this.unshown = this.tail;
  }

  // -- showing the open block ------------------------------------------------------

  showTail() {
    if (!this.unshown) return;
    if (!this.engine || this.tail.length > LIVE_LIMIT) {
      if (!this.plain) {
        this.clearTail();
        this.plain = plainBox(this.root);
        this.unshown = this.tail;
      }
      appendPlain(this.plain, this.unshown);
    } else if (this.growth && performance.now() - this.renderedAt < this.renderCost * RENDER_SHARE) {
      this.growth.appendData(this.unshown);
    } else {
      this.renderTail();
    }
    this.unshown = "";
  }

  /** The tail as Markdown; later text goes where its last text is until the next render. */
  renderTail(highlighted = false) {
    const start = performance.now();
    this.clearTail();
    this.root.append(this.engine.render(this.engine.lex(this.tail), highlighted));
    this.growth = document.createTextNode("");
    growthPoint(this.root, this.lastFrozen).append(this.growth);
    this.renderedAt = performance.now();
    this.renderCost = this.renderedAt - start;
  }

  /** The last block, once the text is complete: rendered once more, in full. */
  finalize() {
    this.finished = true;
    if (!this.engine || this.tail.length > FORMAT_LIMIT) {
      this.showTail();
      return;
    }
    this.renderTail(true);
    this.growth = null;
    this.unshown = "";
  }

  clearTail() {
    const { root } = this;
    while (root.lastChild && root.lastChild !== this.lastFrozen) root.lastChild.remove();
    this.plain = null;
    this.growth = null;
  }
}

/** Where plain text appended to rendered blocks reads on: inside the last text-bearing element. */
function growthPoint(root, lastFrozen) {
  let node = root;
  for (;;) {
    let child = node.lastChild;
    while (child && child !== lastFrozen && child.nodeType === Node.TEXT_NODE && !child.data.trim()) {
      child = child.previousSibling;
    }
    if (!child || child === lastFrozen || child.nodeType !== Node.ELEMENT_NODE || VOID.has(child.tagName)) {
      return node;
    }
    node = child;
  }
}

// -- plain text, laid out in pieces ----------------------------------------------------
// The browser lays out a block's text as a whole: appending to one 1 MB text node
// costs a full layout of that megabyte in every frame. Pieces of a few KB, each
// its own block, cost only the last piece. A piece ends at a line break where
// there is one, or else at a space, so the text reads the same.

function plainBox(root) {
  const box = el("div", { class: "plain-text" });
  root.append(box);
  const plain = { box, text: null, length: 0 };
  newPiece(plain);
  return plain;
}

function newPiece(plain) {
  plain.text = document.createTextNode("");
  plain.box.append(el("div", {}, plain.text));
  plain.length = 0;
}

function appendPlain(plain, text) {
  while (text) {
    let cut = 0;
    if (plain.length >= CHUNK) cut = text.indexOf("\n") + 1;
    if (!cut && plain.length >= 2 * CHUNK) cut = text.indexOf(" ") + 1;
    if (!cut && plain.length >= 4 * CHUNK) cut = Math.min(text.length, CHUNK);
    if (!cut) {
      plain.text.appendData(text);
      plain.length += text.length;
      return;
    }
    plain.text.appendData(text.slice(0, cut));
    text = text.slice(cut);
    newPiece(plain);
  }
}

function plainBlock(text) {
  const plain = plainBox(document.createDocumentFragment());
  appendPlain(plain, text);
  return plain.box;
}
