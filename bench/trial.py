"""One measured stream: a server, a producer process and a browsers process, wired together."""

import os

from bench import common

BROWSERS = os.path.join(common.BENCH, "browsers.py")
PRODUCER = os.path.join(common.BENCH, "producer.py")


def run_stream(server, workdir, browsers, producer_args, browser_args, timeout=180):
    """Start the stream and wait for every browser to have it; returns the raw readings.

    For Tether the producer connects first (the agent must be online for
    execute_command), then the browsers start the command and subscribe, and the
    producer starts on GO. For the bare relay the browsers connect first.
    """
    tether = server.kind != "bare"
    common_args = ["--port", str(server.port), "--target", "tether" if tether else "bare"]
    browser_cmd = [common.PY, BROWSERS, *common_args, "--browsers", str(browsers), "--timeout", str(timeout)]
    browser_cmd += browser_args
    producer_cmd = [common.PY, PRODUCER, *common_args, *producer_args]
    if tether:
        browser_cmd += ["--cookie", server.cookie, "--project", server.seed["project_id"]]
        producer_cmd += ["--token", server.seed["token"], "--workdir", workdir.path]
    tag = f"{server.kind}-{server.mode}-{os.getpid()}"
    producer = consumer = None
    try:
        if tether:
            producer = common.Child(producer_cmd, workdir.file(f"producer-{tag}.log"), name="producer")
            producer.expect("READY", 60)
            consumer = common.Child(browser_cmd, workdir.file(f"browsers-{tag}.log"), name="browsers")
            ready = _ready(consumer)
            producer.expect("COMMAND", 30)
        else:
            consumer = common.Child(browser_cmd, workdir.file(f"browsers-{tag}.log"), name="browsers")
            ready = _ready(consumer)
            producer = common.Child(producer_cmd, workdir.file(f"producer-{tag}.log"), name="producer")
            producer.expect("READY", 60)
        cpu = server.cpu_seconds()
        machine = common.machine_cpu_seconds()
        load = common.loadavg()
        rss = server.rss_kb()
        producer.send("GO")
        sent = producer.expect("RESULT", timeout + 60)
        received = consumer.expect("RESULT", timeout + 60)
        server_cpu = server.cpu_seconds() - cpu
        machine_cpu = common.machine_cpu_seconds() - machine
        return {
            "ready": ready,
            "producer": sent,
            "browsers": received,
            "server_cpu_seconds": server_cpu,
            "machine_cpu_seconds": machine_cpu,
            "loadavg_before": load,
            "server_rss_kb": [rss, server.rss_kb()],
        }
    finally:
        for child in (consumer, producer):
            if child is not None:
                child.stop()


def _ready(consumer):
    ready = consumer.expect("READY", 120)
    return ready


def rates(reading, messages_per_browser=None, chars_per_browser=None):
    """Derive per-browser and total rates from one reading.

    The clock starts at the producer's first send (t0) and stops at each browser's
    last receipt: per-browser rate = what it got / its own time; total = all
    deliveries / the time until the last browser had everything.
    """
    t0 = reading["producer"]["t0"]
    browsers = reading["browsers"]["browsers"]
    done = [b for b in browsers if b["done"] and b["t_last"]]
    if not done:
        return {"complete": False}
    seconds = [(b["t_last"] - t0) / 1e9 for b in done]
    counts = [b["count"] for b in done]
    wall = max(seconds)
    out = {
        "complete": len(done) == len(browsers),
        "browsers": len(browsers),
        "seconds": wall,
        "messages_per_browser": common.median([c / s for c, s in zip(counts, seconds, strict=True)]),
        "messages_total": sum(counts) / wall,
        "messages_received": sum(counts),
        "server_cpu": reading["server_cpu_seconds"] / wall,
        "client_cpu": reading["browsers"]["client_cpu_seconds"] / wall,
        # Busy cores on the whole machine during the stream: 2 means saturated. What the
        # server and the two load processes do not account for is other work on the machine.
        "machine_cpu": reading["machine_cpu_seconds"] / wall,
        "loadavg_before": reading["loadavg_before"],
        "compressed": reading["ready"].get("compressed"),
        "wire_bytes_in": reading["browsers"]["bytes_in"],
    }
    if chars_per_browser:
        out["chars_per_browser"] = chars_per_browser / common.median(seconds)
        out["chars_total"] = chars_per_browser * len(done) / wall
    errors = reading["producer"].get("errors")
    if errors:
        out["producer_errors"] = errors
        out["first_error"] = reading["producer"].get("first_error")
    return out
