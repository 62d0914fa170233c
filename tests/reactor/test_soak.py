"""The soak of tests/support/soak.py, short: a few seconds of churn, slow readers, a
ping flood and chat leave the server with the fds, threads and memory it had
before, every acknowledged message stored and no traceback in its log."""

from __future__ import annotations

import pytest

from tests.support.soak import soak


@pytest.mark.slow
def test_soak_server_gives_back_what_it_took(locking, tmp_path):
    result = soak(5.0, warmup=1.5, locking=locking, db_dir=str(tmp_path))
    failed = {name: c["detail"] for name, c in result["checks"].items() if not c["ok"]}
    assert not failed, (failed, result["counts"], result["errors"][:10])
