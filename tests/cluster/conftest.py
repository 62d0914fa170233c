"""Fixtures of the cluster tests: real PostgreSQL and Redis (or a one-line
skip; with CHAT_REQUIRE_CLUSTER=1, as `.ci/run` sets, a failure), and a
fresh cluster per test."""

from __future__ import annotations

import os

import pytest

from tests.support.cluster import Cluster, services_problem


@pytest.fixture(scope="session")
def services() -> None:
    problem = services_problem()
    if problem is not None:
        if os.environ.get("CHAT_REQUIRE_CLUSTER") == "1":
            pytest.fail(f"cluster tests required, but {problem}")
        pytest.skip(problem)


@pytest.fixture
def cluster(services, tmp_path):
    c = Cluster(tmp_path)
    yield c
    c.close()
    for node in c.nodes.values():
        assert "Traceback" not in node.log_text(), node.log_text()
