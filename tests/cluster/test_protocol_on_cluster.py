"""The protocol suite (tests/reactor/test_commands.py and
test_guarantees.py) against a two-node cluster: each new client of a test
goes to the other node, so every conversation, group and login of the suite
crosses nodes."""

from __future__ import annotations

import pytest

from tests.reactor import test_commands, test_guarantees
from tests.support.cluster import Alternating, Cluster


@pytest.fixture(scope="module")
def server(services, tmp_path_factory):
    c = Cluster(tmp_path_factory.mktemp("cluster"))
    a, b = c.node("a"), c.node("b")
    yield Alternating(a, b)
    c.close()
    for node in (a, b):
        assert "Traceback" not in node.log_text(), node.log_text()


def _suite():
    for module in (test_commands, test_guarantees):
        for name in dir(module):
            test = getattr(module, name)
            if name.startswith("test_") and "server" in test.__code__.co_varnames[:1]:
                yield name, test


globals().update(dict(_suite()))
