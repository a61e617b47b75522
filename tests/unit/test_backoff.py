import random

from infra.queue import backoff_delay


def test_backoff_doubles_from_the_base_up_to_the_cap_with_half_of_it_jittered():
    rng = random.Random(4)
    for attempt, ceiling in [(1, 2.0), (2, 4.0), (3, 8.0), (6, 60.0), (20, 60.0)]:
        delays = [backoff_delay(attempt, base=2.0, cap=60.0, rng=rng) for _ in range(200)]
        assert all(ceiling / 2 <= d <= ceiling for d in delays)
        assert max(delays) - min(delays) > ceiling / 4  # spread out, not in lockstep
