/* The chat page's state and the one reducer that every way of learning about a command goes through.
 *
 * A command's state reaches the page three ways: its results (command_result,
 * live or replayed by seq), command_state events, and REST loads of the
 * session's turns (on opening it, scrolling up, after each subscribe). All three
 * are actions of reduce(): a state only moves as the server's own table allows
 * (canMove, generated from protocol/states.py), so whichever arrives first, the
 * others cannot move it back. The one way back the table has, failed -> running,
 * is a command given up as agent_lost that its agent's late output reopened:
 * its error goes away and the text that follows is appended.
 *
 * reduce() touches no DOM: it updates the state and returns a list of changes
 * (small records, see the `op` values below) that the view applies. The answer
 * text itself is not kept here, only its length: the view owns what is shown.
 */
import { ACTIVE_STATES, FINAL_STATES, canMove, finalState } from "../generated/protocol.js";

const ACTIVE = new Set(ACTIVE_STATES);
const FINAL = new Set(FINAL_STATES);

export const isActive = (state) => ACTIVE.has(state);
export const isFinal = (state) => FINAL.has(state);

export function createState() {
  return {
    sessionId: null,
    lastSeq: 0, // the highest seq applied: the stream is whole up to here
    turns: new Map(), // commandId (or "pending:<clientMessageId>" before the ack) -> turn
    first: null, // key of the turn shown first (older pages go above it)
    active: new Set(), // the turns queued, sent or running (asked after every change)
    permissions: new Map(), // requestId -> pending permission_request
    awaitingSession: 0, // sends that start a new session, not acknowledged yet
    early: [], // results of a new session that came before the ack that names it
    model: null, // the session's model: the one its latest command asked for (null: Claude Code's default)
    // What Claude Code offers, from the latest init event: {models, commands, model}. Kept when
    // another session opens: it belongs to the project's agent, not to one session.
    offered: null,
  };
}

// Tools whose result means a file of the project may have changed (the changes panel looks again).
const EDITING_TOOLS = new Set(["Write", "Edit", "MultiEdit", "NotebookEdit"]);

/** Apply one action to `state`; returns what changed, for the view. */
export function reduce(state, action) {
  const changes = [];
  const handler = HANDLERS[action.type];
  if (!handler) throw new Error(`unknown action ${action.type}`);
  handler(state, action, changes);
  return changes;
}

const HANDLERS = {
  /** Show another session (or a blank new one, for null). */
  open(state, { sessionId }, changes) {
    Object.assign(state, createState(), { sessionId: sessionId || null, offered: state.offered });
    changes.push({ op: "reset" });
  },

  /**
   * Turns from the REST endpoint, oldest first, each {commandId, text, state,
   * error, results?}. `older`: a page of history above what is shown. `lastSeq`:
   * the results hold every result of the session up to it (subscribe from there).
   */
  load(state, { turns, lastSeq, older = false }, changes) {
    const anchor = older ? state.first : undefined;
    let top;
    // Without `older`, a turn listed before one we show is history not loaded: leave it out.
    let lastKnown = -1;
    if (!older) turns.forEach((data, index) => state.turns.has(data.commandId) && (lastKnown = index));
    turns.forEach((data, index) => {
      let turn = state.turns.get(data.commandId);
      const known = Boolean(turn);
      if (!turn) {
        if (index < lastKnown) return;
        turn = addTurn(state, changes, data.commandId, data.text, older ? anchor : undefined);
        if (top === undefined) top = turn.key;
      } else if (older) {
        return; // live results made it already
      }
      setPrompt(turn, data.text, changes);
      setSender(turn, data.by, changes);
      setAttachments(turn, data.attachments, changes);
      if (!older) setModel(state, turn, data.model, changes);
      // A turn that arrives whole from history did not just finish: no "finished" for it.
      const how = { quiet: !known, older };
      for (const message of data.results || []) applyResult(state, turn, message, changes, how);
      move(state, turn, data.state, changes, how.quiet);
      if (data.error && isFinal(turn.state) && turn.state !== "done" && !turn.error) {
        setError(turn, typeof data.error === "string" ? { message: data.error } : data.error, changes);
      }
    });
    if (older && top !== undefined) state.first = top;
    if (!older && typeof lastSeq === "number" && lastSeq > state.lastSeq) state.lastSeq = lastSeq;
  },

  /** A command_result, live or replayed. */
  result(state, { message }, changes) {
    if (message.sessionId !== state.sessionId) {
      // A new session's first results can beat the ack that names the session.
      if (state.sessionId === null && state.awaitingSession > 0) state.early.push(message);
      return;
    }
    if (message.seq <= state.lastSeq) return; // had it already
    if (message.seq > state.lastSeq + 1) {
      changes.push({ op: "gap" }); // the view subscribes again from lastSeq: the server fills it
      return;
    }
    state.lastSeq = message.seq;
    applyResult(state, turnFor(state, message.commandId, changes), message, changes);
  },

  /** A command_state event: where a command stands, straight from the server. */
  command_state(state, { message }, changes) {
    if (message.sessionId !== state.sessionId) return;
    const turn = turnFor(state, message.commandId, changes, message.text);
    setPrompt(turn, message.text, changes);
    setSender(turn, message.by, changes);
    setAttachments(turn, message.attachments, changes);
    // `queued` says the model it asked for, none meaning Claude Code's default; later states say nothing.
    setModel(state, turn, message.state === "queued" ? (message.model ?? null) : message.model, changes);
    move(state, turn, message.state, changes);
  },

  /** What Claude Code offered last time (remembered by the page): until an init event says more. */
  offered(state, { offered }, changes) {
    if (state.offered || !offered) return;
    state.offered = { models: offered.models || null, commands: offered.commands || null, model: null };
    changes.push({ op: "offered", offered: state.offered, remember: false });
  },

  /** The user sent a prompt: a turn for it until the ack names its command. */
  send(state, { key, text, newSession, attachments }, changes) {
    if (newSession) state.awaitingSession += 1;
    const turn = addTurn(state, changes, key, text);
    // Until the server describes them (command_state queued), the turn shows the local files.
    setAttachments(turn, attachments, changes);
  },

  /** The ack of execute_command: the turn becomes its command's; a new session gets its id. */
  sent(state, { key, commandId, sessionId, newSession }, changes) {
    if (newSession) state.awaitingSession -= 1;
    const pending = state.turns.get(key);
    if (pending) {
      const existing = state.turns.get(commandId);
      if (existing && existing !== pending) {
        // A fast answer made the command's turn before this ack: keep that one.
        removeTurn(state, pending, changes);
        setPrompt(existing, pending.prompt, changes);
      } else {
        state.turns.delete(key);
        if (state.first === key) state.first = commandId;
        Object.assign(pending, { key: commandId, commandId });
        state.turns.set(commandId, pending);
        changes.push({ op: "bind", turn: pending });
        move(state, pending, "sent", changes);
      }
    }
    if (newSession && state.sessionId === null && pending) {
      state.sessionId = sessionId;
      state.lastSeq = 0;
      changes.push({ op: "session", sessionId });
      const early = state.early.filter((m) => m.sessionId === sessionId).sort((a, b) => a.seq - b.seq);
      state.early = [];
      for (const message of early) HANDLERS.result(state, { message }, changes);
    }
  },

  /** execute_command was refused (or never answered): the turn goes away. */
  send_failed(state, { key, newSession }, changes) {
    if (newSession) state.awaitingSession -= 1;
    const pending = state.turns.get(key);
    if (pending) removeTurn(state, pending, changes);
    state.early = [];
  },

  permission_request(state, { message }, changes) {
    if (message.sessionId !== state.sessionId || state.permissions.has(message.requestId)) return;
    const turn = turnFor(state, message.commandId, changes);
    if (isFinal(turn.state)) return; // a stale request of a finished command
    state.permissions.set(message.requestId, message);
    changes.push({ op: "permission", turn, request: message });
  },

  permission_resolved(state, { message }, changes) {
    dropPermission(state, message.requestId, changes);
  },

  /** The socket reconnected: the subscribe sends again the requests still pending. */
  permissions_cleared(state, action, changes) {
    for (const requestId of [...state.permissions.keys()]) dropPermission(state, requestId, changes);
  },
};

function addTurn(state, changes, key, prompt, before) {
  const turn = {
    key,
    commandId: key.startsWith("pending:") ? null : key,
    prompt: typeof prompt === "string" ? prompt : null,
    state: "queued",
    error: null,
    model: null, // the model Claude Code reported running it with (its init event)
    permissionMode: null, // the mode Claude Code reported running it in (its init event)
    requestedModel: null, // the model the command asked for (null: Claude Code's default)
    attachments: [], // [{index, name, mediaType, size}] (or, before the ack, the local files)
    tools: new Map(), // tool_use_id -> tool name (a result says only the id)
    by: null, // who sent it (named on the page when the project is shared)
    result: null, // the closing `result` event
    textLength: 0,
    seq: 0, // the highest seq of its results applied (a load never applies one twice)
  };
  state.turns.set(key, turn);
  state.active.add(turn);
  if (state.first === null) state.first = key;
  changes.push({ op: "turn", turn, before });
  return turn;
}

function removeTurn(state, turn, changes) {
  state.turns.delete(turn.key);
  state.active.delete(turn);
  if (state.first === turn.key) state.first = state.turns.keys().next().value ?? null;
  changes.push({ op: "remove", turn });
}

/** The turn of a command, made on the spot for one we have not seen (sent from elsewhere). */
function turnFor(state, commandId, changes, prompt) {
  let turn = state.turns.get(commandId);
  if (!turn) {
    turn = addTurn(state, changes, commandId, prompt);
    if (turn.prompt === null) changes.push({ op: "unknown", turn }); // the view asks the server
  }
  return turn;
}

function setPrompt(turn, text, changes) {
  if (turn.prompt !== null || typeof text !== "string") return;
  turn.prompt = text;
  changes.push({ op: "prompt", turn });
}

function setSender(turn, by, changes) {
  if (turn.by !== null || typeof by !== "string") return;
  turn.by = by;
  changes.push({ op: "sender", turn });
}

/** The turn's attachments as the server describes them; before that, the files being sent (`local`). */
function setAttachments(turn, attachments, changes) {
  if (!Array.isArray(attachments) || !attachments.length) return;
  if (turn.attachments.length && !turn.attachments[0].local) return; // the server's never change
  turn.attachments = attachments;
  changes.push({ op: "attachments", turn });
}

/** The model a command asked for; the newest command's is the session's. */
function setModel(state, turn, model, changes) {
  if (model === undefined) return;
  turn.requestedModel = model || null;
  if (!isNewest(state, turn) || state.model === turn.requestedModel) return;
  state.model = turn.requestedModel;
  changes.push({ op: "model", model: state.model });
}

function isNewest(state, turn) {
  let last = null;
  for (const each of state.turns.values()) last = each;
  return last === turn;
}

function setError(turn, error, changes) {
  turn.error = error;
  changes.push({ op: "error", turn });
}

/** Move a command to `next` if the server's table allows it. */
function move(state, turn, next, changes, quiet = false) {
  if (!next || turn.state === next || !canMove(turn.state, next)) return;
  const before = turn.state;
  turn.state = next;
  if (isActive(next)) state.active.add(turn);
  else state.active.delete(turn);
  changes.push({ op: "state", turn, before });
  if (isActive(before) && isFinal(next)) {
    for (const [requestId, request] of state.permissions) {
      if (request.commandId === turn.commandId) dropPermission(state, requestId, changes);
    }
    if (!quiet) changes.push({ op: "finished", turn });
  } else if (isFinal(before) && isActive(next)) {
    // Reopened: the late output of a lost agent arrived after all.
    if (turn.error) setError(turn, null, changes);
  }
}

/** One result of a command; `how.quiet`: it comes whole from history, `how.older`: from a page above. */
function applyResult(state, turn, message, changes, how = {}) {
  const quiet = Boolean(how.quiet);
  if (message.seq <= turn.seq) return;
  turn.seq = message.seq;
  if (message.response) {
    turn.textLength += message.response.length;
    changes.push({ op: "text", turn, text: message.response });
  }
  if (message.event && typeof message.event === "object") applyEvent(state, turn, message.event, changes, how);
  if (message.status === "streaming") {
    move(state, turn, "running", changes, quiet);
  } else if (message.status === "complete") {
    move(state, turn, "done", changes, quiet);
    changes.push({ op: "end", turn });
  } else if (message.status === "error") {
    move(state, turn, finalState(message.error), changes, quiet);
    if (message.error) setError(turn, message.error, changes);
    // Its text is whole now, even if a REST load said the state before the last results came.
    changes.push({ op: "end", turn });
  }
}

/** Structured Claude Code messages: tool calls and their results, the model, the closing line. */
function applyEvent(state, turn, event, changes, how) {
  switch (event.type) {
    case "tool_use":
      toolUse(turn, event, event.parent_tool_use_id, changes);
      break;
    case "tool_result":
      toolResult(turn, event, changes, how);
      break;
    case "system":
      if (event.subtype === "init") init(state, turn, event, changes, how);
      if (event.subtype === "resume_failed") {
        changes.push({ op: "notice", turn, text: event.message || "A new conversation was started." });
      }
      break;
    case "permission_expired":
      dropPermission(state, event.request_id, changes);
      break;
    case "result":
      turn.result = event;
      changes.push({ op: "summary", turn });
      break;
    case "assistant": // Claude Code's raw message shape: tool calls inside content
      for (const block of contentBlocks(event)) {
        if (block.type === "tool_use") toolUse(turn, block, event.parent_tool_use_id, changes);
      }
      break;
    case "user":
      for (const block of contentBlocks(event)) {
        if (block.type === "tool_result") toolResult(turn, block, changes, how);
      }
      break;
    default:
      break; // anything new: nothing to show
  }
}

function toolUse(turn, block, parent, changes) {
  if (block.id) turn.tools.set(block.id, block.name);
  changes.push({ op: "tool", turn, id: block.id, name: block.name, input: block.input, parent });
}

function toolResult(turn, block, changes, how) {
  changes.push({ op: "tool_result", turn, id: block.tool_use_id, content: block.content, isError: Boolean(block.is_error) });
  // A file written or edited just now: whoever shows the project's changes looks again.
  if (!how.quiet && !block.is_error && EDITING_TOOLS.has(turn.tools.get(block.tool_use_id))) {
    changes.push({ op: "files_changed", turn });
  }
}

/** Claude Code's init event: the model it runs, and the slash commands and models it offers. */
function init(state, turn, event, changes, how) {
  if (typeof event.model === "string") turn.model = event.model;
  if (typeof event.permissionMode === "string") turn.permissionMode = event.permissionMode;
  if (how.older) return; // an older session's offer is not the latest
  const list = (value) => (Array.isArray(value) ? value.filter((item) => item && typeof item === "object") : null);
  const models = list(event.models);
  let commands = list(event.commands);
  if (!commands && Array.isArray(event.slash_commands)) {
    commands = event.slash_commands.filter((name) => typeof name === "string").map((name) => ({ name, description: "", argumentHint: "" }));
  }
  if (!models && !commands) return;
  state.offered = {
    models: models || (state.offered && state.offered.models) || null,
    commands: commands || (state.offered && state.offered.commands) || null,
    model: typeof event.model === "string" ? event.model : null,
  };
  changes.push({ op: "offered", offered: state.offered });
}

function contentBlocks(event) {
  const content = event.message && event.message.content;
  return Array.isArray(content) ? content.filter((b) => b && typeof b === "object") : [];
}

function dropPermission(state, requestId, changes) {
  if (state.permissions.delete(requestId)) changes.push({ op: "permission_gone", requestId });
}

/** The command of the session that is queued, sent or running, if any. */
export function activeTurn(state) {
  for (const turn of state.active) return turn;
  return null;
}
