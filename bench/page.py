"""The chat page in Chromium: how soon a delta is on screen, what an answer costs the tab's main
thread, how a long session opens and scrolls. The page as it is (static/js/chat/) against the page
before the rewrite (the last commit with static/js/chat.js), side by side.

    .venv/bin/python bench/page.py [--quick] [--pages new,old] [--only latency,busy,history,phone]
        [--rate 200] [--latency-deltas 2000] [--busy 2000,20000,200000] [--old-max 20000]
        [--history 1000:10000]

A real system: bench/tether_server.py (gevent, SQLite), a real agent (python -m agent_client)
running the bundled Claude Code against the stand-in model (agent_client/standin.py), and
Debian's Chromium through Playwright. Measured in the page:

- latency: `paced: N RATE` stamps every delta with the time the model wrote it. An init
  script records when each delta's WebSocket frame reaches the page, and, once per frame,
  just after the frame is rendered (a message posted from requestAnimationFrame), which
  deltas the last answer shows. Page-added latency = on screen - received by the socket;
  end to end = on screen - written by the model (both clocks are the machine's).
- busy: `deltas: N` (Claude Code's own pace): CDP Performance.getMetrics TaskDuration
  (the main thread's busy time) from send to the whole answer on screen, the longest task
  (PerformanceObserver longtask), and whether the text on screen equals the model's.
- history: a session of N turns of Markdown answers (bench/history.py) opened by URL: time
  from navigation to its last turn on screen and scrolled to; then wheel scrolling up for a
  while (frame intervals, long tasks, turns loaded); JS heap after a garbage collection
  (CDP HeapProfiler.collectGarbage, then JSHeapUsedSize), with the last page and with every
  turn loaded.
- phone: the same on a 390 x 844 page with the CPU throttled 4x (Emulation.setCPUThrottlingRate),
  plus typing into the composer while a 20,000-delta answer streams (Event Timing: key
  events slower than 16 ms, and the longest).
"""

import argparse
import json
import os
import subprocess
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from bench import common  # noqa: E402
from bench.history import end_marker  # noqa: E402
from tests.browser.helpers import CHROMIUM, CHROMIUM_ARGS, SCROLL_SETTLED  # noqa: E402

PAGES = ("new", "old")
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}
THROTTLE = 4
RENDER_ALL_BUT_FIRST = """async () => {
  const turns = [...document.querySelectorAll('[data-testid=turn]')].slice(1).reverse();
  for (const turn of turns) {
    turn.scrollIntoView({ block: 'start' });
    await new Promise((done) => requestAnimationFrame(() => requestAnimationFrame(done)));
  }
}"""
WHEEL_PX = 200  # a wheel step; 20 a second: 4,000 px/s, a brisk scroll
NEAR_TOP_PX = 3000  # where the reader starts scrolling up from
FRAME_MS = 1000 / 60
# Targets (the page's performance issue).
LATENCY_P50_MS = FRAME_MS
LATENCY_P99_MS = 3 * FRAME_MS
BUSY_20K_S = 0.5
LONG_TASK_MS = 50
OPEN_S = 1.0
HEAP_MB = 30

# Injected before any page script: timestamps and counters the page itself never sees.
PROBE = r"""
(() => {
  const P = (window.__probe = {
    watch: false, arrival: new Map(), stamp: new Map(), shown: new Map(), maxShown: -1,
    longTasks: [], longFrames: [], frames: [], events: [],
  });
  const Native = window.WebSocket;
  window.WebSocket = class extends Native {
    constructor(...args) {
      super(...args);
      this.addEventListener("message", (event) => {
        if (!P.watch || typeof event.data !== "string" || event.data.indexOf("@") < 0) return;
        const now = performance.now();
        for (const m of event.data.matchAll(/w(\d+)@(\d+)/g)) {
          const id = Number(m[1]);
          if (!P.arrival.has(id)) { P.arrival.set(id, now); P.stamp.set(id, Number(m[2])); }
        }
      });
    }
  };
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) P.longTasks.push([e.startTime, e.duration]);
  }).observe({ type: "longtask", buffered: true });
  // What ran in a frame over 50 ms (Long Animation Frames): the scripts that took longest in it.
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const scripts = [...e.scripts].sort((a, b) => b.duration - a.duration).slice(0, 3);
      P.longFrames.push({
        duration: Math.round(e.duration),
        blocking: Math.round(e.blockingDuration),
        render: Math.round(e.duration - (e.renderStart ? e.renderStart - e.startTime : e.duration)),
        scripts: scripts.map((x) => `${x.invoker || x.invokerType} ${Math.round(x.duration)} ms`
          + ` (${(x.sourceURL || "").split("/").pop()}:${x.sourceFunctionName || "?"})`),
      });
    }
  }).observe({ type: "long-animation-frame", buffered: true });
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) P.events.push([e.name, e.duration, e.processingStart - e.startTime]);
  }).observe({ type: "event", durationThreshold: 16, buffered: true });

  // The highest delta id in the last answer's last text (deltas end up on screen in order).
  function lastShown() {
    const answers = document.querySelectorAll("[data-testid=assistant-message]");
    const answer = answers[answers.length - 1];
    if (!answer) return -1;
    let node = answer;
    while (node.lastChild) node = node.lastChild;
    const walker = document.createTreeWalker(answer, NodeFilter.SHOW_TEXT);
    walker.currentNode = node;
    for (let text = node.nodeType === 3 ? node : walker.previousNode(); text; text = walker.previousNode()) {
      const at = text.data.lastIndexOf("@");
      if (at < 0) continue;
      const w = text.data.lastIndexOf("w", at);
      const id = parseInt(text.data.slice(w + 1, at), 10);
      if (w >= 0 && !Number.isNaN(id)) return id;
    }
    return -1;
  }
  const channel = new MessageChannel();
  channel.port1.onmessage = () => {
    const id = lastShown();
    if (id <= P.maxShown) return;
    const now = performance.now();
    for (let i = P.maxShown + 1; i <= id; i += 1) P.shown.set(i, now);
    P.maxShown = id;
  };
  // A frame loop only while measuring: frames the page would not have made cost it nothing.
  let last = 0;
  let looping = false;
  function frame(time) {
    if (!P.watch && !P.framing) {
      looping = false;
      return;
    }
    if (P.frames.length < 100000 && last) P.frames.push(time - last);
    last = time;
    if (P.watch) channel.port2.postMessage(0); // runs after this frame is rendered
    requestAnimationFrame(frame);
  }
  function loop() {
    if (looping) return;
    looping = true;
    last = 0;
    requestAnimationFrame(frame);
  }
  P.start = () => {
    Object.assign(P, { watch: true, arrival: new Map(), stamp: new Map(), shown: new Map(), maxShown: -1 });
    loop();
  };
  P.frameTimes = (on) => {
    P.framing = on;
    if (on) loop();
    return P.frames;
  };
  P.stop = () => {
    P.watch = false;
    const rows = [];
    for (const [id, arrival] of P.arrival) rows.push([id, arrival, P.shown.get(id) ?? null, P.stamp.get(id)]);
    return { timeOrigin: performance.timeOrigin, rows };
  };
  P.mark = () => {
    P.longTasks = []; P.longFrames = []; P.frames = []; P.events = []; last = 0;
  };
})();
"""

# The page before the rewrite loads from the new page's entry point: classic scripts, in order.
OLD_LOADER = """
for (const src of ["/static/js/common.js", "/static/js/chat.js"]) {
  await new Promise((resolve, reject) => {
    const script = document.createElement("script");
    script.src = src;
    script.onload = resolve;
    script.onerror = reject;
    document.head.append(script);
  });
}
"""


def parse_args(argv=None):
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--pages", default="new,old")
    parser.add_argument("--only", default="latency,busy,history,phone")
    parser.add_argument("--rate", type=int, default=200, help="deltas per second in the latency runs")
    parser.add_argument("--latency-deltas", type=int, default=2000)
    parser.add_argument("--busy", default="2000,20000,200000", help="answer sizes in deltas")
    parser.add_argument("--old-max", type=int, default=20000, help="the old page only up to this size")
    parser.add_argument("--history", default="1000:10000", help="TURNS:CHARS of the long session")
    parser.add_argument("--scroll-steps", type=int, default=160, help="wheel steps, 20 a second")
    parser.add_argument("--repeat", type=int, default=3, help="trials of each run (1 for 200,000 deltas)")
    parser.add_argument("--mode", default="gevent")
    options = parser.parse_args(argv)
    if options.quick:
        options.latency_deltas = min(options.latency_deltas, 1000)
        options.scroll_steps = min(options.scroll_steps, 80)
        options.repeat = 1
    return options


def old_page_files():
    """static/js/common.js and chat.js as they were before the ES modules replaced them."""

    def git(*args):
        return subprocess.run(
            ["git", *args], cwd=common.ROOT, check=True, capture_output=True, text=True
        ).stdout

    removed = git("rev-list", "-n", "1", "HEAD", "--", "static/js/chat.js").strip()
    return {name: git("show", f"{removed}^:static/js/{name}") for name in ("common.js", "chat.js")}


# -- the system under test ------------------------------------------------------------------------


class Stack:
    """Stand-in model, Tether server (with a long session seeded) and a real agent."""

    def __init__(self, options, workdir):
        from agent_client.standin import StandInModel

        self.model = StandInModel()
        self.model.start()
        self.server = common.Server("tether", options.mode, workdir, history=options.history)
        self.server.start(timeout=600)
        seed = self.server.seed
        env = os.environ.copy()
        env.update(
            ANTHROPIC_BASE_URL=self.model.url,
            ANTHROPIC_API_KEY="tether-bench-key",
            CLAUDE_CONFIG_DIR=workdir.file("claude-config"),
            DISABLE_TELEMETRY="1",
            CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC="1",
            DISABLE_AUTOUPDATER="1",
        )
        args = [common.PY, "-m", "agent_client", "--server", self.server.url, "--token", seed["token"]]
        args += ["--name", "bench", "--root", seed["project_dir"], "--state-dir", workdir.file("agent-state")]
        self.agent = common.Child(args, workdir.file("agent.log"), env, "agent")
        self.url = self.server.url
        self.project = seed["project_id"]
        self.history = seed.get("history_session_id")

    def stop(self):
        self.agent.stop()
        self.server.stop()
        self.model.stop()


class Chrome:
    """Debian's Chromium through Playwright; pages with the probe, as the new or the old page."""

    def __init__(self, stack, old_files):
        from playwright.sync_api import sync_playwright

        self.stack = stack
        self.old_files = old_files
        self.playwright = sync_playwright().start()
        self.browser = self.playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)

    def page(self, variant, viewport=DESKTOP, throttle=1):
        context = self.browser.new_context(viewport=viewport, base_url=self.stack.url)
        context.set_default_timeout(60_000)
        context.add_cookies([{"name": "session", "value": self.stack.server.cookie, "url": self.stack.url}])
        context.add_init_script(PROBE)
        if variant == "old":
            scripts = {
                "/static/js/chat/main.js": OLD_LOADER,
                **{f"/static/js/{k}": v for k, v in self.old_files.items()},
            }
            for path, body in scripts.items():
                context.route(f"**{path}", serve(body))
        page = context.new_page()
        page.on("pageerror", lambda error: print(f"  page error ({variant}): {error}", flush=True))
        cdp = context.new_cdp_session(page)
        cdp.send("Performance.enable")
        if throttle != 1:
            cdp.send("Emulation.setCPUThrottlingRate", {"rate": throttle})
        return page, cdp

    def chat(self, variant, viewport=DESKTOP, throttle=1, session=None):
        page, cdp = self.page(variant, viewport, throttle)
        query = f"?session={session}" if session else ""
        page.goto(f"/projects/{self.stack.project}{query}")
        page.wait_for_selector("[data-testid=connection-status][data-state=connected]")
        page.wait_for_selector("[data-testid=agent-status][data-agent-status=online]", timeout=120_000)
        return page, cdp

    def close(self):
        self.browser.close()
        self.playwright.stop()


def serve(body):
    """A Playwright route handler that answers with this script."""
    return lambda route, request: route.fulfill(body=body, content_type="text/javascript")


def metrics(cdp):
    return {m["name"]: m["value"] for m in cdp.send("Performance.getMetrics")["metrics"]}


def send(page, prompt):
    page.wait_for_selector("[data-testid=send]:not([disabled])")
    page.fill("[data-testid=prompt]", prompt)
    page.click("[data-testid=send]")


def wait_final(page, timeout_s):
    """The last turn ended (any final state); returns it."""
    page.wait_for_function(
        """() => { const t = [...document.querySelectorAll("[data-testid=turn]")].pop();
                   return t && ["done", "failed", "stopped"].includes(t.dataset.state); }""",
        timeout=timeout_s * 1000,
        polling=100,
    )
    return page.evaluate("() => [...document.querySelectorAll('[data-testid=turn]')].pop().dataset.state")


def new_session(page):
    page.click("[data-testid=new-session]")
    page.wait_for_function("() => !document.querySelector('[data-testid=turn]')")


# -- measurements ---------------------------------------------------------------------------------


def latency(chrome, variant, options, viewport=DESKTOP, throttle=1):
    page, _ = chrome.chat(variant, viewport, throttle)
    count, rate = options.latency_deltas, options.rate
    page.evaluate("__probe.start()")
    send(page, f"paced: {count} {rate}")
    state = wait_final(page, count / rate + 120)
    page.wait_for_function(f"() => __probe.maxShown >= {count - 1}", timeout=60_000, polling=100)
    data = page.evaluate("__probe.stop()")
    page.context.close()
    origin = data["timeOrigin"]
    added = [shown - arrival for _, arrival, shown, _ in data["rows"] if shown is not None]
    total = [(origin + shown) - stamp / 1000 for _, _, shown, stamp in data["rows"] if shown is not None]
    return {
        "variant": variant,
        "viewport": f"{viewport['width']}x{viewport['height']}",
        "throttle": throttle,
        "deltas": count,
        "rate": rate,
        "state": state,
        "seen": len(added),
        "added_p50": common.percentile(added, 50),
        "added_p99": common.percentile(added, 99),
        "added_max": max(added) if added else None,
        "e2e_p50": common.percentile(total, 50),
        "e2e_p99": common.percentile(total, 99),
    }


STARTED = """(n) => {
  const answer = document.querySelector("[data-testid=assistant-message]");
  return Boolean(answer) && answer.textContent.includes(` w${n} `);
}"""

EXACT = """(n) => {
  const answers = document.querySelectorAll("[data-testid=assistant-message]");
  const text = answers[answers.length - 1].textContent.trim();
  let expected = "";
  for (let i = 0; i < n; i += 1) expected += (i ? " w" : "w") + i;
  return text === expected;
}"""

COMPLETE = """(n) => {
  const answers = document.querySelectorAll("[data-testid=assistant-message]");
  const answer = answers[answers.length - 1];
  return Boolean(answer) && answer.textContent.trimEnd().endsWith(" w" + (n - 1));
}"""


def busy(chrome, variant, count, viewport=DESKTOP, throttle=1, typing=None):
    """Main-thread cost of a `deltas: count` answer, from send to the whole text on screen."""
    page, cdp = chrome.chat(variant, viewport, throttle)
    page.evaluate("__probe.mark()")
    before = metrics(cdp)
    started = time.monotonic()
    send(page, f"deltas: {count}")
    typed = None
    if typing:
        page.wait_for_function(
            STARTED,
            arg=count // 20,
            timeout=180_000,
            polling=50,
        )
        page.evaluate("__probe.mark()")
        page.click("[data-testid=prompt]")
        page.keyboard.type(typing, delay=40)
        typed = page.input_value("[data-testid=prompt]") == typing
    state = wait_final(page, 120 + count / 500 * throttle)
    page.wait_for_function(COMPLETE, arg=count, timeout=300_000, polling=100)
    seconds = time.monotonic() - started
    after = metrics(cdp)
    exact = page.evaluate(EXACT, count)
    long_tasks = page.evaluate("__probe.longTasks")
    long_frames = page.evaluate("__probe.longFrames")
    events = page.evaluate("__probe.events")
    page.context.close()
    key_events = [e for e in events if e[0] in ("keydown", "keypress", "keyup", "input", "beforeinput")]
    row = {
        "variant": variant,
        "viewport": f"{viewport['width']}x{viewport['height']}",
        "throttle": throttle,
        "deltas": count,
        "state": state,
        "exact": exact,
        "seconds": seconds,
        "busy_s": after["TaskDuration"] - before["TaskDuration"],
        "cpu_s": after["ThreadTime"] - before["ThreadTime"],
        "script_s": after["ScriptDuration"] - before["ScriptDuration"],
        "layout_s": after["LayoutDuration"]
        - before["LayoutDuration"]
        + after["RecalcStyleDuration"]
        - before["RecalcStyleDuration"],
        "long_tasks": len(long_tasks),
        "longest_ms": max((d for _, d in long_tasks), default=0),
        # The slowest frame over 50 ms, with the scripts that took longest in it.
        "longest_frame": max(long_frames, key=lambda f: f["duration"], default=None),
    }
    if typing:
        row.update(
            typed=typed,
            keys=len(typing),
            slow_key_events=len(key_events),
            slowest_key_ms=max((e[1] for e in key_events), default=0),
        )
    return row


LAST_TURN_SHOWN = """(marker) => {
  const answers = document.querySelectorAll("[data-testid=assistant-message]");
  const last = answers[answers.length - 1];
  const s = document.querySelector(".scroller");
  if (!last || !last.textContent.includes(marker)) return false;
  return s.scrollHeight - s.scrollTop - s.clientHeight < 4 ? performance.now() : false;
}"""


def heap_mb(cdp):
    cdp.send("HeapProfiler.enable")
    cdp.send("HeapProfiler.collectGarbage")
    values = metrics(cdp)
    return values["JSHeapUsedSize"] / 1e6, int(values["Nodes"])


def history(chrome, variant, options):
    turns, _ = (int(x) for x in options.history.split(":"))
    page, cdp = chrome.page(variant)
    page.goto(f"/projects/{chrome.stack.project}?session={chrome.stack.history}")
    row = {"variant": variant, "turns": turns}
    timeout = 60 if options.quick else 180
    try:
        handle = page.wait_for_function(
            LAST_TURN_SHOWN, arg=end_marker(turns - 1), polling="raf", timeout=timeout * 1000
        )
        row["open_s"] = handle.json_value() / 1000
    except Exception:  # noqa: BLE001 - a page that never gets there is a result too
        row["open_s"] = None
        row["note"] = f"last turn not shown within {timeout} s"
        page.context.close()
        return row
    page.wait_for_timeout(500)  # let the page settle (the old page is still polling)
    row["heap_mb"], row["nodes"] = heap_mb(cdp)
    row["turns_shown"] = page.locator("[data-testid=turn]").count()
    # A reader near the top of what is loaded scrolls up at a brisk pace: the next page of
    # turns loads and is drawn while they scroll into it.
    box = page.locator(".scroller").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 2)
    # Turns off screen have estimated heights (content-visibility) until they have been drawn:
    # scrolling up into them, they grow and scroll anchoring keeps the view still, so "3,000 px
    # from the top" by the estimates is the height of every long turn above by the reader's
    # wheel. A reader who has read up to near the top has drawn those turns: draw them (all but
    # the first, whose top is where the next page loads), then start from near the top.
    page.evaluate(RENDER_ALL_BUT_FIRST)
    page.evaluate(f"document.querySelector('.scroller').scrollTop = {NEAR_TOP_PX}")
    page.evaluate(SCROLL_SETTLED)
    page.wait_for_timeout(500)
    page.evaluate("__probe.mark()")
    page.evaluate("__probe.frameTimes(true)")
    for _ in range(options.scroll_steps):
        page.mouse.wheel(0, -WHEEL_PX)
        page.wait_for_timeout(50)
    steps = options.scroll_steps
    frames = page.evaluate("__probe.frameTimes(false)")
    long_tasks = page.evaluate("__probe.longTasks")
    row.update(
        scroll_px=steps * WHEEL_PX,
        turns_after_scroll=page.locator("[data-testid=turn]").count(),
        frame_p50_ms=common.percentile(frames, 50),
        frame_p95_ms=common.percentile(frames, 95),
        frame_max_ms=max(frames, default=None),
        scroll_long_tasks=len(long_tasks),
        scroll_longest_ms=max((d for _, d in long_tasks), default=0),
    )
    # Every turn loaded: jump to the top until the first turn is there.
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and page.locator("[data-testid=turn]").count() < turns:
        page.mouse.wheel(0, -1e7)
        page.wait_for_timeout(200)
    page.wait_for_timeout(1000)
    row["all_turns_shown"] = page.locator("[data-testid=turn]").count()
    row["heap_all_mb"], row["nodes_all"] = heap_mb(cdp)
    page.context.close()
    return row


# -- running it all -------------------------------------------------------------------------------


def run(options):
    variants = [v for v in common.csv_words(options.pages) if v in PAGES]
    only = set(common.csv_words(options.only))
    workdir = common.Workdir("tether-bench-page-")
    if "history" not in only:
        options.history = "1:10"
    out = {"latency": [], "busy": [], "history": [], "phone": []}
    stack = Stack(options, workdir)
    chrome = None

    def record(kind, row):
        row["load"] = common.loadavg()
        out[kind].append(row)
        shown = {k: round(v, 4) if isinstance(v, float) else v for k, v in row.items()}
        print(f"{kind}: {json.dumps(shown)}", flush=True)

    try:
        chrome = Chrome(stack, old_page_files())
        chrome.chat("new")[0].context.close()  # the agent is online
        # Trials alternate between the pages, so that a burst of other work hits both alike.
        for _ in range(options.repeat):
            for variant in variants if "latency" in only else ():
                record("latency", latency(chrome, variant, options))
        for count in common.csv_ints(options.busy) if "busy" in only else ():
            for _ in range(options.repeat if count <= 20000 else 1):
                for variant in variants:
                    if variant == "new" or count <= options.old_max:
                        record("busy", busy(chrome, variant, count))
        for variant in variants if "history" in only else ():
            record("history", history(chrome, variant, options))
        for _ in range(options.repeat):
            for variant in variants if "phone" in only else ():
                record("phone", latency(chrome, variant, options, PHONE, THROTTLE))
                record("phone", busy(chrome, variant, 20000, PHONE, THROTTLE, typing=TYPED))
    finally:
        if chrome:
            chrome.close()
        stack.stop()
    return out


TYPED = "the composer keeps up with me"


def _median_row(rows, keys):
    """One row for a set of trials: the median of each numeric key; a check holds if it held in
    every trial."""
    merged = dict(rows[0])
    for key in keys:
        merged[key] = common.median([r.get(key) for r in rows])
    for key in CHECKS:
        if key in merged:
            merged[key] = all(r.get(key) for r in rows)
    merged["trials"] = len(rows)
    return merged


def summary(rows, group, keys):
    """Trials grouped by the `group` keys, each group as its median row."""
    groups = {}
    for row in rows:
        groups.setdefault(tuple(row.get(k) for k in group), []).append(row)
    return [_median_row(trials, keys) for trials in groups.values()]


LATENCY_KEYS = ("added_p50", "added_p99", "added_max", "e2e_p50", "e2e_p99", "load")
BUSY_KEYS = ("seconds", "busy_s", "cpu_s", "script_s", "layout_s", "long_tasks", "longest_ms", "load")
BUSY_KEYS += ("slow_key_events", "slowest_key_ms")  # the phone's runs, typing while it streams
CHECKS = ("exact", "typed")
GROUP = ("variant", "viewport", "throttle", "deltas")


def verdicts(latencies, busies, histories):
    """(target, measured, goal, met) for the new page, with the old page's figure beside it."""
    rows = []

    def pick(rows_, variant, **keys):
        found = [r for r in rows_ if r["variant"] == variant and all(r.get(k) == v for k, v in keys.items())]
        return found[0] if found else {}

    new, old = pick(latencies, "new", throttle=1), pick(latencies, "old", throttle=1)
    if new:
        rows.append(
            (
                f"page-added latency p50 at {new['rate']} deltas/s",
                f"{common.fmt(new['added_p50'], 1)} ms (old page {common.fmt(old.get('added_p50'), 1)})",
                "<= 16.7 ms",
                new["added_p50"] <= LATENCY_P50_MS,
            )
        )
        rows.append(
            (
                f"page-added latency p99 at {new['rate']} deltas/s",
                f"{common.fmt(new['added_p99'], 1)} ms (old page {common.fmt(old.get('added_p99'), 1)})",
                "<= 50 ms",
                new["added_p99"] <= LATENCY_P99_MS,
            )
        )
    new, old = pick(busies, "new", deltas=20000, throttle=1), pick(busies, "old", deltas=20000, throttle=1)
    if new:
        less = common.ratio(old.get("busy_s"), new["busy_s"])
        rows.append(
            (
                "main thread busy, 20,000 deltas",
                f"{common.fmt(new['busy_s'], 2)} s (old page {common.fmt(old.get('busy_s'), 2)} s: "
                f"{common.fmt(less, 1)}x less), exact: {new['exact']}",
                "<= 0.5 s",
                new["busy_s"] <= BUSY_20K_S and new["exact"],
            )
        )
    big = pick(busies, "new", deltas=200000, throttle=1)
    if big and new:
        growth = common.ratio(big["busy_s"], new["busy_s"])
        rows.append(
            (
                "200,000 deltas: exact, no task over 50 ms, linear",
                f"exact: {big['exact']}, longest task {common.fmt(big['longest_ms'])} ms, "
                f"busy {common.fmt(big['busy_s'], 2)} s = {common.fmt(growth, 1)}x the 20,000 answer",
                "exact, < 50 ms, ~10x",
                big["exact"] and big["longest_ms"] < LONG_TASK_MS and growth is not None and growth < 15,
            )
        )
    new, old = pick(histories, "new"), pick(histories, "old")
    if new:
        rows.append(
            (
                f"{new['turns']:,}-turn session opens to its last turn",
                f"{common.fmt(new.get('open_s'), 2)} s (old page {common.fmt(old.get('open_s'), 2)} s)",
                "< 1 s",
                new.get("open_s") is not None and new["open_s"] < OPEN_S,
            )
        )
    if new.get("open_s") is not None:
        rows.append(
            (
                "older turns load as the reader scrolls up, smoothly",
                f"{new['turns_shown']} -> {new['turns_after_scroll']} turns; frames p95 "
                f"{common.fmt(new['frame_p95_ms'], 1)} ms, "
                f"longest task {common.fmt(new['scroll_longest_ms'])} ms",
                "more turns, no task over 50 ms",
                new["turns_after_scroll"] > new["turns_shown"] and new["scroll_longest_ms"] < LONG_TASK_MS,
            )
        )
        rows.append(
            (
                "JS heap after GC",
                f"{common.fmt(new['heap_mb'], 1)} MB opened, {common.fmt(new['heap_all_mb'], 1)} MB with "
                f"{new['all_turns_shown']} turns (old page {common.fmt(old.get('heap_mb'), 1)} MB)",
                f"< {HEAP_MB} MB",
                new["heap_all_mb"] < HEAP_MB,
            )
        )
    slow = pick(latencies, "new", throttle=THROTTLE)
    if slow:
        rows.append(
            (
                f"phone, CPU {THROTTLE}x: page-added latency p50 / p99",
                f"{common.fmt(slow['added_p50'], 1)} / {common.fmt(slow['added_p99'], 1)} ms",
                "<= 16.7 / 50 ms",
                slow["added_p50"] <= LATENCY_P50_MS and slow["added_p99"] <= LATENCY_P99_MS,
            )
        )
    typing = pick(busies, "new", throttle=THROTTLE)
    if typing:
        rows.append(
            (
                f"phone, CPU {THROTTLE}x: typing while 20,000 deltas stream",
                f"text typed whole: {typing['typed']}; key events over 16 ms: {typing['slow_key_events']}, "
                f"slowest {common.fmt(typing['slowest_key_ms'])} ms; "
                f"longest task {common.fmt(typing['longest_ms'])} ms",
                "every key shown, none over 100 ms",
                typing["typed"] and typing["slowest_key_ms"] <= 100,
            )
        )
    return rows


def _cells(row, columns):
    return [
        common.fmt(row.get(key), digits) if digits is not None else row.get(key, "-")
        for key, digits in columns
    ]


def report(out):
    latencies = summary(out["latency"] + [r for r in out["phone"] if "added_p50" in r], GROUP, LATENCY_KEYS)
    busies = summary(out["busy"] + [r for r in out["phone"] if "busy_s" in r], GROUP, BUSY_KEYS)
    if latencies:
        columns = [
            ("variant", None),
            ("viewport", None),
            ("throttle", None),
            ("deltas", None),
            ("rate", None),
        ]
        columns += [("trials", None), ("added_p50", 1), ("added_p99", 1), ("added_max", 1)]
        columns += [("e2e_p50", 1), ("e2e_p99", 1), ("load", 1)]
        common.table(
            [c for c, _ in columns],
            [_cells(r, columns) for r in latencies],
            title="\nDelta to screen, ms (medians of the trials): added = on screen - received by the page's "
            "socket; e2e = on screen - written by the model; load = 1-min load average",
        )
    if busies:
        columns = [
            ("variant", None),
            ("viewport", None),
            ("throttle", None),
            ("deltas", None),
            ("trials", None),
        ]
        columns += [("exact", None), ("seconds", 2), ("busy_s", 3), ("cpu_s", 3), ("script_s", 3)]
        columns += [("layout_s", 3), ("long_tasks", 0), ("longest_ms", 0), ("load", 1)]
        common.table(
            [c for c, _ in columns],
            [_cells(r, columns) for r in busies],
            title="\nMain thread during one `deltas: N` answer (medians): busy = CDP TaskDuration, "
            "cpu = ThreadTime, from send to the whole text on screen",
        )
    if out["history"]:
        columns = [("variant", None), ("turns", None), ("open_s", 2), ("heap_mb", 1), ("nodes", None)]
        columns += [("turns_shown", None), ("turns_after_scroll", None), ("frame_p50_ms", 1)]
        columns += [("frame_p95_ms", 1), ("frame_max_ms", 1), ("scroll_long_tasks", None)]
        columns += [("scroll_longest_ms", 0), ("all_turns_shown", None), ("heap_all_mb", 1), ("load", 1)]
        common.table(
            [c for c, _ in columns],
            [_cells(r, columns) for r in out["history"]],
            title="\nA long session: opened by URL, wheel-scrolled up, then every turn loaded",
        )
    rows = verdicts(latencies, busies, out["history"])
    if rows:
        common.table(
            ["target", "measured", "goal", "verdict"],
            [[t, m, g, "met" if ok else "MISSED"] for t, m, g, ok in rows],
            title="\nTargets (the new page)",
        )
    return rows


def main(argv=None):
    options = parse_args(argv)
    out = run(options)
    rows = report(out)
    common.save("page", {"options": vars(options), "results": out, "verdicts": [list(r) for r in rows]})
    return rows


if __name__ == "__main__":
    main()
