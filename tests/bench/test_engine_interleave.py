"""``bench.engine``: ``interleave`` runs each side in blocks (its own loop), alternating, n timed calls each;
``wait_idle`` lets the stack finish its post-write work before a baseline is timed."""

from bench.engine import interleave


def test_blocks_alternate_and_each_side_gets_n_timed_calls():
    order: list[tuple[str, int]] = []
    xa, xb = interleave(lambda i: order.append(("a", i)), lambda i: order.append(("b", i)), n=5, warmup=1, block=2)
    assert len(xa) == len(xb) == 5
    assert all(x >= 0 for x in xa + xb)
    # warm-up call by call, then blocks of 2 (the last one short), a before b in each round
    assert order == [("a", 0), ("b", 0),
                     ("a", 1), ("a", 2), ("b", 1), ("b", 2),
                     ("a", 3), ("a", 4), ("b", 3), ("b", 4),
                     ("a", 5), ("b", 5)]


def test_block_of_one_is_call_by_call():
    order: list[str] = []
    interleave(lambda i: order.append("a"), lambda i: order.append("b"), n=3, warmup=0, block=1)
    assert order == ["a", "b"] * 3


def test_wait_idle_returns_at_once_on_an_idle_machine_and_gives_up_after_max_s():
    import time

    from bench.engine import wait_idle

    t0 = time.perf_counter()
    waited = wait_idle(busy_below=1.01, max_s=5.0)  # any load counts as idle
    assert waited < 2.0 and time.perf_counter() - t0 < 2.0
    t0 = time.perf_counter()
    waited = wait_idle(busy_below=-1.0, max_s=1.0)  # nothing counts as idle: waits max_s
    assert 1.0 <= waited < 3.0
