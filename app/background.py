"""The shape the server's queue-fed services share (the chunk writer, the notifier, the push
sender): a queue from the async mode and background tasks that take from it, started on first
use or with the app, each stopped by a None. Each service has its own loop (batching, ordering,
retries) in `_run`."""

from app import socketio


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
