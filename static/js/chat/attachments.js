/* Files sent with a command: attached by a button, by pasting (a screenshot) or by dropping them
 * onto the composer; shown as chips (images as thumbnails) until sent.
 *
 * The bounds and types are the contract's (WORKSPACE in generated/protocol.js): at most
 * MAX_ATTACHMENTS files and MAX_ATTACHMENT_BYTES together; images Claude takes (PNG, JPEG, GIF,
 * WebP) or UTF-8 text. What breaks them is refused here with the reason, before anything is read
 * or sent; the server refuses it anyway (too_large, invalid_message). A file the browser gives no
 * text type (or none at all) goes as text/plain when its bytes are UTF-8 text.
 */
import { WORKSPACE } from "../generated/protocol.js";
import { el, formatBytes } from "../lib/dom.js";

const IMAGES = new Set(WORKSPACE.IMAGE_MEDIA_TYPES);
const TEXT_APPLICATIONS = new Set(WORKSPACE.TEXT_APPLICATION_TYPES);
const TEXT_TYPE = /^text\/[a-z0-9][a-z0-9.+-]{0,80}$/;

/** What kind of attachment `type` is: "image", "text" (a type the server takes as text) or null. */
export function attachmentKind(type) {
  if (IMAGES.has(type)) return "image";
  if (TEXT_TYPE.test(type) || TEXT_APPLICATIONS.has(type)) return "text";
  return null;
}

/** The URL of a sent command's attachment (images show from it; text opens in a new tab). */
export function attachmentUrl(commandId, index) {
  return `/api/commands/${encodeURIComponent(commandId)}/attachments/${index}`;
}

/** A data: URL's parts: the page's CSP allows data: images, and the wire wants the base64. */
function readDataUrl(file) {
  return new Promise((resolve, reject) => {
    const reader = new FileReader();
    reader.onload = () => resolve(String(reader.result));
    reader.onerror = () => reject(reader.error || new Error("could not read the file"));
    reader.readAsDataURL(file);
  });
}

/** True if the bytes are UTF-8 text (no NUL), as the server requires of a text attachment. */
async function isUtf8Text(file) {
  const bytes = new Uint8Array(await file.arrayBuffer());
  if (bytes.includes(0)) return false;
  try {
    new TextDecoder("utf-8", { fatal: true }).decode(bytes);
    return true;
  } catch (error) {
    return false;
  }
}

export class Attachments {
  /** `list`: the chips; `error`: where a refusal is said; `input`: the hidden file input. */
  constructor({ form, button, input, list, error, onChange }) {
    Object.assign(this, { form, button, input, list, error, onChange });
    this.items = []; // {name, mediaType, size, data (base64), url (data: URL, images only), local: true}
    this.reading = 0; // files still being read: Send waits for them
    this.wire();
  }

  wire() {
    this.button.addEventListener("click", () => this.input.click());
    this.input.addEventListener("change", () => {
      this.add([...this.input.files]);
      this.input.value = ""; // the same file may be picked again after removing it
    });
    this.form.addEventListener("paste", (event) => {
      const files = [...(event.clipboardData ? event.clipboardData.files : [])];
      if (!files.length) return;
      // A screenshot comes as a file alone; text copied with an image (from a document) still pastes.
      if (!event.clipboardData.types.includes("text/plain")) event.preventDefault();
      this.add(files.map((file, n) => named(file, n)));
    });
    this.form.addEventListener("dragover", (event) => {
      if (!event.dataTransfer || !event.dataTransfer.types.includes("Files")) return;
      event.preventDefault();
      event.dataTransfer.dropEffect = "copy";
      this.form.classList.add("dropping");
    });
    for (const type of ["dragleave", "dragend"]) {
      this.form.addEventListener(type, (event) => {
        if (!this.form.contains(event.relatedTarget)) this.form.classList.remove("dropping");
      });
    }
    this.form.addEventListener("drop", (event) => {
      this.form.classList.remove("dropping");
      if (!event.dataTransfer || !event.dataTransfer.files.length) return;
      event.preventDefault();
      this.add([...event.dataTransfer.files]);
    });
  }

  get busy() {
    return this.reading > 0;
  }

  totalBytes(items = this.items) {
    return items.reduce((sum, item) => sum + item.size, 0);
  }

  /** Take in files, refusing (with the reason) those past the bounds or of a type Claude cannot read. */
  async add(files) {
    const refusals = [];
    const accepted = [];
    let bytes = this.totalBytes();
    for (const file of files) {
      const reason = this.refusal(file, this.items.length + accepted.length, bytes);
      if (reason) refusals.push(reason);
      else {
        accepted.push(file);
        bytes += file.size;
      }
    }
    this.reading += accepted.length;
    this.changed();
    for (const file of accepted) {
      try {
        const item = await this.read(file);
        if (item.refusal) refusals.push(item.refusal);
        else this.items.push(item);
      } catch (error) {
        refusals.push(`${file.name}: could not be read (${error.message || error}).`);
      } finally {
        this.reading -= 1;
      }
    }
    this.showError(refusals.join(" "));
    this.changed();
  }

  refusal(file, count, bytes) {
    const { MAX_ATTACHMENTS, MAX_ATTACHMENT_BYTES, MAX_TEXT_BYTES } = WORKSPACE;
    if (count >= MAX_ATTACHMENTS) return `${file.name}: at most ${MAX_ATTACHMENTS} files per command.`;
    if (bytes + file.size > MAX_ATTACHMENT_BYTES) {
      return `${file.name} (${formatBytes(file.size)}): the files of one command may weigh ${formatBytes(MAX_ATTACHMENT_BYTES)} together.`;
    }
    if (file.type.startsWith("image/") && !IMAGES.has(file.type)) {
      return `${file.name}: Claude reads PNG, JPEG, GIF and WebP images, not ${file.type}.`;
    }
    if (!IMAGES.has(file.type) && file.size > MAX_TEXT_BYTES) {
      return `${file.name} (${formatBytes(file.size)}): text files up to ${formatBytes(MAX_TEXT_BYTES)}.`;
    }
    return null;
  }

  async read(file) {
    let mediaType = file.type;
    if (attachmentKind(mediaType) !== "image") {
      if (!(await isUtf8Text(file))) {
        return { refusal: `${file.name}: not an image Claude reads (PNG, JPEG, GIF, WebP) nor UTF-8 text.` };
      }
      if (attachmentKind(mediaType) !== "text") mediaType = "text/plain"; // no type, or one the server does not list
    }
    const url = await readDataUrl(file);
    const item = { name: file.name || "file", mediaType, size: file.size, data: url.slice(url.indexOf(",") + 1), local: true };
    if (mediaType.startsWith("image/")) item.url = url;
    return item;
  }

  remove(item) {
    this.items = this.items.filter((each) => each !== item);
    this.showError("");
    this.changed();
  }

  /** After a send: the chips go (a refused send puts them back with restore()). */
  take() {
    const items = this.items;
    this.items = [];
    this.showError("");
    this.changed();
    return items;
  }

  restore(items) {
    if (this.items.length || !items.length) return;
    this.items = items;
    this.changed();
  }

  showError(text) {
    this.error.textContent = text;
    this.error.hidden = !text;
  }

  changed() {
    this.render();
    if (this.onChange) this.onChange();
  }

  render() {
    const chips = this.items.map((item) =>
      el(
        "li",
        { class: "attachment-chip", "data-testid": "attachment", dataset: { name: item.name, mediaType: item.mediaType } },
        attachmentFace(item),
        el(
          "button",
          { type: "button", class: "small chip-remove", "aria-label": `Remove ${item.name}`, title: "Remove", onclick: () => this.remove(item) },
          "×",
        ),
      ),
    );
    if (this.reading) chips.push(el("li", { class: "attachment-chip muted", text: "Reading…" }));
    this.list.replaceChildren(...chips);
    this.list.hidden = !chips.length;
  }
}

/** A screenshot pasted from the clipboard is called "image.png" by every browser: say what it is. */
function named(file, n) {
  if (file.name && file.name !== "image.png") return file;
  const type = file.type.split("/")[1] || "png";
  return new File([file], `pasted-${n + 1}.${type}`, { type: file.type });
}

/**
 * How an attachment shows (in the composer and in its turn): an image's thumbnail, or a text
 * file's name; `href` makes it a link to the stored file.
 */
export function attachmentFace(item, href) {
  const image = attachmentKind(item.mediaType) === "image";
  const src = href && image ? href : item.url;
  const face = [
    image && src ? el("img", { class: "attachment-thumb", src, alt: item.name, loading: "lazy", "data-testid": "attachment-thumb" }) : null,
    el(
      "span",
      { class: "attachment-text" },
      el("span", { class: "attachment-name", text: item.name }),
      el("span", { class: "attachment-size muted", text: formatBytes(item.size) }),
    ),
  ];
  if (!href) return el("span", { class: "attachment-face" }, face);
  return el("a", { class: "attachment-face", href, target: "_blank", rel: "noopener" }, face);
}
