"""The shape the server's queue-fed services share (the chunk writer, the notifier, the push
sender): a queue from the async mode and background tasks that take from it, started on first
use or with the app, each stopped by a None. Each service has its own loop (batching, ordering,
retries) in `_run`."""

import contextlib
import logging

from sqlalchemy.exc import SQLAlchemyError

from app import db, socketio

log = logging.getLogger("tether.background")


def end_session():
    """End this task's database session, whatever state its connection is in.

    A connection that the database closed under an open transaction (a restart, a failover, a
    dropped link) fails the rollback that ending a session does. It is thrown away instead,
    so that the task's next job or event gets a fresh one: the error must not end the task.
    """
    try:
        db.session.remove()
    except SQLAlchemyError as error:
        cause = getattr(error, "orig", None) or error  # not every SQLAlchemy error wraps a driver's
        log.warning("database connection lost (%s); the next use opens a new one", type(cause).__name__)
        with contextlib.suppress(SQLAlchemyError):
            db.session.registry().invalidate()
        db.session.registry.clear()


class QueueTasks:
    def __init__(self, app):
        self.app = app
        self.queue = None
        self.started = False

    def task_count(self):
        """How many background tasks take from the queue."""
        return 1

    def start(self):
        if not self.started:
            self.started = True
            self.queue = socketio.server.eio.create_queue()
            for _ in range(self.task_count()):
                socketio.start_background_task(self._run)

    def stop(self):
        if self.started:
            for _ in range(self.task_count()):
                self.queue.put(None)

    def put(self, item):
        self.start()
        self.queue.put(item)

    def _run(self):
        """The service's loop: take from the queue until a None comes (each service has its own)."""
        raise NotImplementedError
