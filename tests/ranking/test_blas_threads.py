"""The ranking process caps numpy's BLAS pool (``RankingSettings.blas_threads``): its small matrix
products run on gRPC worker threads beside busy encoders, where a waiting BLAS helper thread stalls
the call (docs/performance.md, stop 28)."""

from __future__ import annotations

import pytest
from threadpoolctl import threadpool_info, threadpool_limits

from services.ranking.server import limit_blas_threads


def _blas_threads() -> set[int]:
    return {p["num_threads"] for p in threadpool_info() if p["user_api"] == "blas"}


@pytest.fixture
def two_blas_threads():
    """The pool at 2 threads (what one core per thread gives on the 2-core boxes), restored after."""
    import numpy  # noqa: F401 - loads the BLAS library threadpoolctl acts on

    if not _blas_threads():
        pytest.skip("numpy is not linked to a BLAS library threadpoolctl knows")
    with threadpool_limits(limits=2, user_api="blas"):
        assert _blas_threads() == {2}
        yield


def test_zero_leaves_the_pool_as_it_is(two_blas_threads):
    limit_blas_threads(0)
    assert _blas_threads() == {2}


def test_the_ranking_service_runs_numpy_on_one_blas_thread(two_blas_threads, make_ranking_service):
    svc = make_ranking_service()  # default settings: blas_threads = 1
    assert svc.settings.blas_threads == 1
    assert _blas_threads() == {1}
