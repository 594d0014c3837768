/* The composer's choices from what Claude Code offers (its latest init event, kept by the store):
 * the model (ModelPicker) and slash-command completion (SlashCompletion).
 *
 * Before any init event on this page, the models are Claude Code's common aliases and the slash
 * commands those the agent's Claude Code offered last time (remembered in localStorage per agent).
 */
import { el } from "../lib/dom.js";

// Claude Code's aliases, offered until an init event says which models it has.
const ALIASES = [
  { value: "default", displayName: "Default", description: "Claude Code's default model" },
  { value: "sonnet", displayName: "Sonnet", description: "" },
  { value: "opus", displayName: "Opus", description: "" },
  { value: "haiku", displayName: "Haiku", description: "" },
];
const MAX_SHOWN = 60; // slash commands listed at once (the list scrolls)

/** The last offer of an agent's Claude Code, for pages that have not seen an init event yet. */
export const rememberedOffer = {
  key: (agentId) => `tether.offered.${agentId}`,
  load(agentId) {
    try {
      const offer = JSON.parse(localStorage.getItem(this.key(agentId)) || "null");
      return offer && typeof offer === "object" ? offer : null;
    } catch (error) {
      return null;
    }
  },
  save(agentId, offer) {
    try {
      localStorage.setItem(this.key(agentId), JSON.stringify({ models: offer.models, commands: offer.commands }));
    } catch (error) {
      // Private mode or full storage: the next init event offers them again.
    }
  },
};

/**
 * The model select. It shows the open session's model (the one its latest command asked for) until
 * the user picks another; the picked one goes with every command (`value()`), and applies to the
 * session from then on. Untouched, nothing is sent: the session keeps its model.
 */
export class ModelPicker {
  constructor({ select }) {
    this.select = select;
    this.models = ALIASES;
    this.sessionModel = null;
    this.chosen = null; // what the user picked on this page, sent with each command
    this.resolved = null; // the model Claude Code reported running (init's `model`)
    select.addEventListener("change", () => {
      this.chosen = select.value;
      this.render();
    });
    this.render();
  }

  /** The store's offer changed: a new list of models (and the model Claude Code runs). */
  offer(offered) {
    if (offered && Array.isArray(offered.models) && offered.models.length) this.models = offered.models;
    if (offered && offered.model) this.resolved = offered.model;
    this.render();
  }

  /** Another session is on screen: its own model shows; a blank one keeps what was picked. */
  opened(sessionId) {
    this.sessionModel = null;
    if (sessionId) this.chosen = null;
    this.render();
  }

  /** The open session's model (null: Claude Code's default), as its latest command asked. */
  setSessionModel(model) {
    this.sessionModel = model || null;
    this.render();
  }

  value() {
    return this.chosen;
  }

  render() {
    const current = this.chosen || this.sessionModel || "default";
    const options = this.models.map((m) => ({ value: m.value, label: m.displayName || m.value, title: m.description || "" }));
    if (!options.some((o) => o.value === current)) options.unshift({ value: current, label: current, title: "" });
    const signature = JSON.stringify([options, current]);
    if (signature !== this.signature) {
      this.signature = signature;
      this.select.replaceChildren(...options.map((o) => el("option", { value: o.value, title: o.title || null }, o.label)));
      this.select.value = current;
    }
    const picked = options.find((o) => o.value === current);
    this.select.title = `Model: ${picked ? picked.label : current}${this.resolved ? ` (last run: ${this.resolved})` : ""}`;
    this.select.dataset.model = current;
  }
}

/**
 * Completion of slash commands: typing "/" at the start of the prompt lists the commands Claude Code
 * offers, filtered as one types; up/down move, Enter or Tab pick, Esc closes; a tap picks too.
 * Picking puts "/name " in the prompt. A slash command is sent as the prompt's text.
 */
export class SlashCompletion {
  constructor({ prompt, list }) {
    Object.assign(this, { prompt, list });
    this.commands = [];
    this.shown = [];
    this.active = -1;
    this.dismissed = null; // the text Esc closed the list on: it stays closed until the text changes
    prompt.setAttribute("aria-autocomplete", "list");
    prompt.setAttribute("aria-controls", list.id);
    prompt.addEventListener("input", () => this.refresh());
    prompt.addEventListener("blur", () => this.close());
    // pointerdown, not click: the prompt keeps its focus (and a phone its keyboard).
    list.addEventListener("pointerdown", (event) => {
      const option = event.target.closest("[data-name]");
      if (!option) return;
      event.preventDefault();
      this.pick(option.dataset.name);
    });
  }

  offer(offered) {
    if (offered && Array.isArray(offered.commands)) {
      this.commands = offered.commands.filter((c) => typeof c.name === "string" && c.name);
      if (this.isOpen) this.refresh();
    }
  }

  get isOpen() {
    return !this.list.hidden;
  }

  /** The word typed after "/" at the very start of the prompt, or null. */
  query() {
    const match = /^\/(\S*)$/.exec(this.prompt.value.slice(0, this.prompt.selectionEnd));
    return match && this.prompt.value.indexOf(" ") === -1 && this.prompt.value.indexOf("\n") === -1 ? match[1] : null;
  }

  refresh() {
    const query = this.query();
    if (query === null || !this.commands.length || this.prompt.value === this.dismissed) {
      this.close();
      return;
    }
    this.dismissed = null;
    const q = query.toLowerCase();
    const starts = this.commands.filter((c) => c.name.toLowerCase().startsWith(q));
    const contains = this.commands.filter((c) => !c.name.toLowerCase().startsWith(q) && c.name.toLowerCase().includes(q));
    this.shown = [...starts, ...contains].slice(0, MAX_SHOWN);
    if (!this.shown.length) {
      this.close();
      return;
    }
    this.active = 0;
    this.render();
  }

  render() {
    this.list.replaceChildren(
      ...this.shown.map((command, index) =>
        el(
          "li",
          {
            id: `${this.list.id}-${index}`,
            role: "option",
            class: "slash-option",
            "data-testid": "slash-command",
            "aria-selected": index === this.active ? "true" : "false",
            dataset: { name: command.name },
          },
          el("span", { class: "slash-name" }, `/${command.name}`, command.argumentHint ? el("span", { class: "slash-hint muted", text: ` ${command.argumentHint}` }) : null),
          command.description ? el("span", { class: "slash-description muted", text: command.description }) : null,
        ),
      ),
    );
    this.list.hidden = false;
    this.prompt.setAttribute("aria-expanded", "true");
    this.prompt.setAttribute("aria-activedescendant", `${this.list.id}-${this.active}`);
    const active = this.list.children[this.active];
    if (active) active.scrollIntoView({ block: "nearest" });
  }

  close() {
    if (this.list.hidden) return;
    this.list.hidden = true;
    this.list.replaceChildren();
    this.prompt.setAttribute("aria-expanded", "false");
    this.prompt.removeAttribute("aria-activedescendant");
  }

  pick(name) {
    this.prompt.value = `/${name} `;
    this.prompt.setSelectionRange(this.prompt.value.length, this.prompt.value.length);
    this.close();
    this.prompt.focus();
    this.prompt.dispatchEvent(new Event("input", { bubbles: true })); // the composer sizes itself
  }

  /** The prompt's keydown, before the composer's: true if the list took the key. */
  keydown(event) {
    if (!this.isOpen || event.isComposing) return false;
    const count = this.shown.length;
    switch (event.key) {
      case "ArrowDown":
      case "ArrowUp":
        this.active = (this.active + (event.key === "ArrowDown" ? 1 : count - 1)) % count;
        this.render();
        break;
      case "Enter":
      case "Tab":
        if (event.shiftKey) return false;
        this.pick(this.shown[this.active].name);
        break;
      case "Escape":
        this.dismissed = this.prompt.value;
        this.close();
        break;
      default:
        return false;
    }
    event.preventDefault();
    return true;
  }
}
