"""Login throttling: too many failures for one username from one address -> HTTP 429."""

import threading
import time
from collections import defaultdict, deque


class LoginThrottle:
    """Counts recent failures per (address, username) in this process.

    Kept in memory on purpose: it is a brake on password guessing, not an
    account lock, so a restart that forgets it costs little.
    """

    def __init__(self, max_failures, window_seconds):
        self.max_failures = max_failures
        self.window = window_seconds
        self._failures = defaultdict(deque)
        self._lock = threading.Lock()

    def _recent(self, key, now):
        failures = self._failures[key]
        while failures and failures[0] <= now - self.window:
            failures.popleft()
        return failures

    def blocked(self, key):
        with self._lock:
            return len(self._recent(key, time.monotonic())) >= self.max_failures

    def failed(self, key):
        with self._lock:
            now = time.monotonic()
            self._recent(key, now).append(now)

    def succeeded(self, key):
        with self._lock:
            self._failures.pop(key, None)
