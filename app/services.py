"""The server's background services, made in `create_app` and started and stopped with it.

- the chunk writer (app/storage.py): one per process, stores agents' output in batches;
- delivery (app/delivery.py): each browser's cursor on each session it follows;
- the scheduler: one background task that runs the periodic jobs (wired in create_app);
- the notifier (app/notify.py) and the Web Push sender (app/push.py).

Nothing starts with the first socket: `start()` runs when the app is made (unless
the configuration says SERVICES_AUTOSTART = False) and `stop()` ends the writer
and the scheduler. `app.current_services()` reaches them from request code.
"""

import logging
import threading
from dataclasses import dataclass

from app import socketio
from app.background import end_session
from app.notify import Notifier
from app.push import PushSender
from app.storage import ChunkWriter

log = logging.getLogger("tether.services")


@dataclass
class Job:
    name: str
    run: object  # called with the app, inside an app context
    every: float  # seconds
    due: float = 0.0


class Scheduler:
    """Runs each periodic job every `job.every` seconds, in one background task.

    A job that fails is logged and runs again at its next turn: a database blip
    must not end presence or the token watch for good.
    """

    def __init__(self, app):
        self.app = app
        self.jobs = []
        self.running = False
        # Held while jobs run: stop() waits for a running job, so none runs after it returns
        # (a job after the app's end would reach a database that may be gone).
        self._running_jobs = threading.Lock()

    def add(self, name, run, every):
        self.jobs.append(Job(name, run, every, due=every))

    def start(self):
        if not self.running and self.jobs:
            self.running = True
            socketio.start_background_task(self._loop)

    def stop(self):
        self.running = False
        with self._running_jobs:
            pass  # a job that had started has ended

    def _loop(self):
        tick = min(job.every for job in self.jobs)
        clock = 0.0
        while True:
            socketio.sleep(tick)
            with self._running_jobs:
                if not self.running:
                    return
                clock += tick
                for job in self.jobs:
                    if clock >= job.due:
                        job.due = clock + job.every
                        self.run_now(job)

    def run_now(self, job):
        with self.app.app_context():
            try:
                job.run(self.app)
            except Exception:
                log.exception("background job %s failed", job.name)
            finally:
                end_session()


class Services:
    def __init__(self, app, delivery, web_namespace, agent_namespace):
        self.app = app
        self.writer = ChunkWriter(app)
        self.delivery = delivery
        self.web_namespace = web_namespace
        self.agent_namespace = agent_namespace
        self.scheduler = Scheduler(app)
        self.notifier = Notifier(app)
        self.push = PushSender(app)

    def start(self):
        self.writer.start()
        self.notifier.start()
        self.push.start()
        self.scheduler.start()

    def stop(self):
        self.scheduler.stop()
        self.writer.stop()
        self.notifier.stop()
        self.push.stop()
