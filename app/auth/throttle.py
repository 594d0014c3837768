"""Login throttling: too many failures for one username from one address -> HTTP 429."""

import threading
import time
from collections import deque


class LoginThrottle:
    """Counts recent failures per (address, username) in this process.

    Kept in memory on purpose: it is a brake on password guessing, not an
    account lock, so a restart that forgets it costs little.
    """

    def __init__(self, max_failures, window_seconds):
        self.max_failures = max_failures
        self.window = window_seconds
        self._failures = {}
        self._lock = threading.Lock()

    def _recent(self, key, now):
        """Failures of `key` inside the window; keys with none left are forgotten."""
        failures = self._failures.get(key)
        if failures is None:
            return deque()
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        if not failures:
            del self._failures[key]
        return failures

    def blocked(self, key):
        with self._lock:
            return len(self._recent(key, time.monotonic())) >= self.max_failures

    def failed(self, key):
        with self._lock:
            now = time.monotonic()
            self._recent(key, now)
            self._failures.setdefault(key, deque()).append(now)

    def succeeded(self, key):
        with self._lock:
            self._failures.pop(key, None)
