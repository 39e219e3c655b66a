"""Per-key limits: token buckets on a fake clock, and socket counts."""

from __future__ import annotations

import pytest

from agent.limits import RateLimit, RateLimited, SocketCount


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_a_key_may_burst_then_is_held_to_its_rate_and_told_how_long_to_wait() -> None:
    clock = Clock()
    limit = RateLimit("messages", per_minute=60, burst=3, clock=clock)
    for _ in range(3):
        limit.check(1)
    with pytest.raises(RateLimited) as caught:
        limit.check(1)
    assert caught.value.retry_after == pytest.approx(1.0)
    assert caught.value.retry_after_header == "1"
    assert "too many messages" in caught.value.message
    limit.check(2)  # another key has its own bucket
    clock.now += 0.5
    with pytest.raises(RateLimited) as caught:
        limit.check(1)
    assert caught.value.retry_after == pytest.approx(0.5)
    assert caught.value.retry_after_header == "1"  # whole seconds, rounded up
    clock.now += 0.5
    limit.check(1)
    clock.now += 3600  # a long pause refills only up to the burst
    for _ in range(3):
        limit.check(1)
    with pytest.raises(RateLimited):
        limit.check(1)


def test_a_refused_action_is_not_counted() -> None:
    clock = Clock()
    limit = RateLimit("requests", per_minute=60, burst=1, clock=clock)
    limit.check(1)
    for _ in range(5):
        with pytest.raises(RateLimited):
            limit.check(1)
    clock.now += 1
    limit.check(1)


def test_a_rate_of_zero_is_no_limit() -> None:
    limit = RateLimit("requests", per_minute=0, burst=1)
    for _ in range(1000):
        limit.check(1)


def test_sockets_are_counted_per_key_up_to_the_limit() -> None:
    sockets = SocketCount(2)
    assert sockets.open(1) and sockets.open(1)
    assert not sockets.open(1)
    assert sockets.held(1) == 2
    assert sockets.open(2)
    sockets.close(1)
    assert sockets.open(1)
    sockets.close(1)
    sockets.close(1)
    assert sockets.held(1) == 0
    unlimited = SocketCount(0)
    assert all(unlimited.open(1) for _ in range(1000))
