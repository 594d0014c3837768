"""Several server processes behind Debian's nginx, with the configuration docs/deployment.md gives.

Two `python wsgi.py` processes share PostgreSQL and a Redis channel; nginx (the
documented `upstream` with `ip_hash`, and the WebSocket upgrade of /socket.io) is
the only address the page and the agent know. A real Chromium page signs in,
allows a tool, and streams an answer while the process holding its socket is
killed: the page comes back through nginx, on the other process, with the answer whole.
"""

import os
import re
import shutil
import subprocess

import pytest
import requests
from playwright.sync_api import expect

from app import db
from app.models import Agent
from tests.browser.helpers import ANSWER_TIMEOUT_MS, UI, answer, send, slow_text
from tests.harness import free_port, wait_until
from tests.integration.test_scale_out import Cluster
from tests.sockets import app_with

NGINX = shutil.which("nginx") or "/usr/sbin/nginx"
DEPLOYMENT = os.path.join(os.path.dirname(__file__), "..", "..", "docs", "deployment.md")


def documented_config():
    """The nginx block of docs/deployment.md, as written there."""
    with open(DEPLOYMENT) as file:
        text = file.read()
    return re.search(r"```nginx\n(.*?)```", text, re.S).group(1)


def nginx_config(port, upstreams, workdir):
    """The documented configuration on loopback: plain http on `port`, our two processes upstream."""
    site = documented_config()
    site = re.sub(r"listen 443 ssl;", f"listen 127.0.0.1:{port};", site)
    servers = "".join(f"    server 127.0.0.1:{upstream};\n" for upstream in upstreams)
    site = re.sub(r"(    server 127\.0\.0\.1:\d+;\n)+", servers, site)
    temp = os.path.join(workdir, "nginx-temp")
    os.makedirs(temp, exist_ok=True)
    return f"""
daemon off;
worker_processes 1;
pid {workdir}/nginx.pid;
error_log {workdir}/nginx-error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
{site}
}}
"""


class Nginx:
    def __init__(self, workdir, upstreams):
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.conf = os.path.join(workdir, "nginx.conf")
        with open(self.conf, "w") as file:
            file.write(nginx_config(self.port, upstreams, workdir))
        self.log = open(os.path.join(workdir, "nginx.log"), "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [NGINX, "-c", self.conf, "-p", workdir], stdout=self.log, stderr=self.log
        )
        wait_until(self._serving, message="nginx up")

    def _serving(self):
        assert self.proc.poll() is None, f"nginx exited; see {self.log.name}"
        try:
            return requests.get(self.url + "/login", timeout=1).status_code == 200
        except requests.RequestException:
            return False

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait(10)
        self.log.close()


class NginxUI(UI):
    """The seeded user's pages, reached through nginx."""

    def __init__(self, live, browsers, nginx):
        super().__init__(live, browsers)
        self.nginx = nginx

    @property
    def url(self):
        return self.nginx.url


@pytest.fixture
def behind_nginx(postgresql_url, tmp_path, claude_env, browsers):
    if not os.path.exists(NGINX):
        pytest.fail("this test needs Debian's nginx (apt-get install -y nginx)", pytrace=False)
    with app_with(postgresql_url) as app:
        # One proxy in front: the origin check and the login throttle see the forwarded host and address.
        extra = {"TETHER_PROXY_COUNT": "1"}
        cluster = Cluster(app, postgresql_url, str(tmp_path), claude_env, "redis://127.0.0.1:6379/0", extra)
        cluster.start()
        nginx = Nginx(str(tmp_path), [cluster.a.port, cluster.b.port])
        try:
            yield cluster, nginx, NginxUI(cluster, browsers, nginx)
        finally:
            nginx.stop()
            cluster.close()


def serving_process(cluster, agent_id):
    """The server process that holds the agent's socket (and, by ip_hash, the page's)."""
    with cluster.app.app_context():
        server_id = db.session.get(Agent, agent_id).server_id
        db.session.remove()
    return next(p for p in (cluster.a, cluster.b) if f"process {server_id}" in p.output())


def test_a_page_through_nginx_survives_the_death_of_its_server_process(behind_nginx):
    cluster, nginx, ui = behind_nginx
    cluster.agent(ui.seed, server=nginx)
    page = ui.chat()

    send(page, "write: through-nginx.txt it went through nginx")
    request = page.get_by_test_id("permission-request")
    expect(request).to_be_visible(timeout=ANSWER_TIMEOUT_MS)
    request.get_by_test_id("allow").click()
    wait_until(lambda: os.path.exists(os.path.join(ui.seed.project_path, "through-nginx.txt")), timeout=90)

    send(page, "slow: 200 30")
    expect(answer(page)).to_contain_text("w20", timeout=ANSWER_TIMEOUT_MS)
    serving_process(cluster, ui.seed.agent_id).kill()

    expect(answer(page)).to_have_text(slow_text(200), timeout=ANSWER_TIMEOUT_MS)
    expect(page.get_by_test_id("connection-status")).to_have_attribute("data-state", "connected")
    with open(os.path.join(ui.seed.project_path, "through-nginx.txt")) as file:
        assert file.read().strip() == "it went through nginx"
