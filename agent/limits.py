"""Per-key limits against abuse: how fast a key may send, how many sockets it may hold.

All of it is kept in memory by each process: with N processes a key may
reach N times a rate, and N times the socket limit, in total. A key's
buckets live as long as the process; there is one per key that has been used.
"""

from __future__ import annotations

import math
import time
from collections import Counter
from collections.abc import Callable

from settings import Settings


class RateLimited(Exception):
    """Over a rate limit; :attr:`retry_after` is how many seconds until the next is allowed."""

    def __init__(self, what: str, retry_after: float) -> None:
        super().__init__(f"too many {what}; retry after {retry_after:.1f} s")
        self.message = str(self)
        self.retry_after = retry_after

    @property
    def retry_after_header(self) -> str:
        """The value for an HTTP ``Retry-After`` header: whole seconds, rounded up."""
        return str(max(1, math.ceil(self.retry_after)))


class TokenBucket:
    """*rate* tokens a second, at most *burst* saved up; each action takes one."""

    __slots__ = ("burst", "rate", "stamp", "tokens")

    def __init__(self, rate: float, burst: int, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now

    def take(self, now: float) -> float:
        """Take a token: 0 if one was there, else the seconds until one will be."""
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            return 0.0
        return (1 - self.tokens) / self.rate


class RateLimit:
    """One token bucket per key, *per_minute* a minute with bursts of *burst*; 0 means none."""

    def __init__(
        self,
        what: str,
        per_minute: float,
        burst: int,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.what = what
        self.rate = per_minute / 60
        self.burst = burst
        self.clock = clock
        self._buckets: dict[int, TokenBucket] = {}

    def check(self, key_id: int) -> None:
        """Count one action of key *key_id*.

        :raises RateLimited: the key is over its rate; nothing was counted.
        """
        if self.rate <= 0:
            return
        now = self.clock()
        bucket = self._buckets.get(key_id)
        if bucket is None:
            bucket = self._buckets[key_id] = TokenBucket(self.rate, self.burst, now)
        if wait := bucket.take(now):
            raise RateLimited(self.what, wait)


class SocketCount:
    """How many chat WebSockets each key holds open, against a limit (0: none)."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._open: Counter[int] = Counter()

    def open(self, key_id: int) -> bool:
        """Count a new socket of *key_id*; False (and nothing counted) if it holds the limit."""
        if self.limit and self._open[key_id] >= self.limit:
            return False
        self._open[key_id] += 1
        return True

    def close(self, key_id: int) -> None:
        self._open[key_id] -= 1
        if self._open[key_id] <= 0:
            del self._open[key_id]

    def held(self, key_id: int) -> int:
        return self._open[key_id]


class KeyLimits:
    """The limits of :class:`settings.Settings`, for one process."""

    def __init__(self, settings: Settings) -> None:
        self.messages = RateLimit("messages", settings.messages_per_minute, settings.message_burst)
        self.requests = RateLimit("requests", settings.requests_per_minute, settings.request_burst)
        self.sockets = SocketCount(settings.max_sockets_per_key)
        self.max_sessions = settings.max_sessions_per_key
