"""Several server processes over Redis and PostgreSQL: routing, presence and healing across them."""

import subprocess

import pytest
import redis

from tests.conftest import LiveSystem
from tests.harness import assert_gapless, free_port, unique, wait_until
from tests.lanes import starts
from tests.sockets import app_with

SLOW = "slow: 150 20"
SLOW_TEXT = " ".join(f"w{i}" for i in range(150))


class RedisServer:
    """A private redis-server on a free port, so a test may restart it."""

    def __init__(self, workdir):
        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.workdir = workdir
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(
            [
                "redis-server",
                "--bind",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                self.workdir,
            ],
            stdout=subprocess.DEVNULL,
        )
        wait_until(self._ping, message="redis-server up")
        return self

    def _ping(self):
        try:
            return redis.Redis.from_url(self.url, socket_timeout=0.5).ping()
        except redis.RedisError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait()


class Cluster(LiveSystem):
    """Two server processes (A and B) sharing PostgreSQL and a Redis channel."""

    def __init__(self, app, database_url, workdir, claude_env, redis_url, extra_env=None):
        env = {"TETHER_MESSAGE_QUEUE": redis_url, "TETHER_MESSAGE_QUEUE_CHANNEL": unique("tether-test-")}
        env.update(extra_env or {})
        super().__init__(app, database_url, workdir, claude_env, server_env=env)
        self.b = self.new_server()
        self.processes.append(self.b)

    @property
    def a(self):
        return self.server

    def start(self):
        super().start()
        self.b.start()
        return self


@pytest.fixture
@starts("integration")
def cluster_on(postgresql_url, tmp_path, claude_env):
    systems = []

    def start(redis_url="redis://127.0.0.1:6379/0"):
        stack = app_with(postgresql_url)
        app = stack.__enter__()
        system = Cluster(app, postgresql_url, str(tmp_path), claude_env, redis_url).start()
        systems.append((system, stack))
        return system

    yield start
    for system, stack in systems:
        system.close()
        stack.__exit__(None, None, None)


def test_browser_on_one_process_runs_a_command_on_an_agent_connected_to_the_other(cluster_on):
    cluster = cluster_on()
    seed = cluster.seed()
    on_a, on_b = cluster.browser(seed, cluster.a), cluster.browser(seed, cluster.b)
    cluster.agent(seed, server=cluster.a)
    on_b.agent_online(seed.agent_id)

    reply = on_b.run(seed.project_id, "write: cross.txt crossed processes")
    on_a.follow(reply["sessionId"])
    wait_until(lambda: on_a.permissions and on_b.permissions, message="permission request on both processes")
    answer = {
        "sessionId": reply["sessionId"],
        "requestId": on_b.permissions[0]["requestId"],
        "decision": "allow",
    }
    assert on_b.call("permission_response", answer)["ok"]
    for browser in (on_a, on_b):
        assert browser.wait_final(reply["commandId"])["status"] == "complete"
    assert [(r["seq"], r["response"]) for r in on_a.session_results(reply["sessionId"])] == [
        (r["seq"], r["response"]) for r in on_b.session_results(reply["sessionId"])
    ]


def test_agent_presence_survives_its_process_being_killed(cluster_on):
    cluster = cluster_on()
    seed = cluster.seed()
    watcher = cluster.browser(seed, cluster.b)
    cluster.agent(seed, server=cluster.a)
    watcher.agent_online(seed.agent_id)

    cluster.a.kill()  # no goodbye: only the shared heartbeat can tell
    watcher.agent_online(seed.agent_id, online=False, timeout=45)
    cluster.agent(seed, name="moved", server=cluster.b)
    watcher.agent_online(seed.agent_id, online=True)
    reply = watcher.run(seed.project_id, "say: served by process B")
    assert watcher.wait_final(reply["commandId"])["status"] == "complete"


def test_redis_restarted_mid_stream_loses_nothing(cluster_on, tmp_path):
    private_redis = RedisServer(str(tmp_path)).start()
    try:
        cluster = cluster_on(private_redis.url)
        seed = cluster.seed()
        on_a, on_b = cluster.browser(seed, cluster.a), cluster.browser(seed, cluster.b)
        cluster.agent(seed, server=cluster.a)
        on_b.agent_online(seed.agent_id)
        reply = on_a.run(seed.project_id, SLOW)
        on_b.follow(reply["sessionId"])
        wait_until(lambda: len(on_b.session_results(reply["sessionId"])) > 3, message="streaming to B")

        private_redis.stop()
        private_redis.start()

        for browser in (on_a, on_b):
            assert browser.wait_final(reply["commandId"], timeout=90)["status"] == "complete"
            assert browser.text_of(reply["commandId"]) == SLOW_TEXT
            assert_gapless(browser.session_results(reply["sessionId"]))
    finally:
        private_redis.stop()
