"""`chat-bench`'s cluster cells (benchmarks/cluster.py): the two-node cell and
its SQLite baseline end to end for about a second each on a real PostgreSQL
and Redis (skipped when they do not answer), and the ratios of its report."""

from __future__ import annotations

import csv
import os

import pytest

from benchmarks import cli, cluster, cluster_results
from benchmarks.matrix import Cell, Result


@pytest.fixture(scope="module")
def services():
    down = cluster.services_down()
    if down:
        pytest.skip(f"cluster bench needs PostgreSQL and Redis: {down}")


def leftover_databases() -> list[str]:
    import psycopg

    with psycopg.connect(cluster.PG_ADMIN) as c:
        rows = c.execute("SELECT datname FROM pg_database").fetchall()
    return [n for (n,) in rows if n.startswith(f"{cluster.DB_PREFIX}{os.getpid()}_")]


def test_two_node_cell_runs_clean_and_reports_every_part_against_sqlite(services, tmp_path, capsys):
    out = tmp_path / "bench"
    argv = ["--quick", "--designs", "cluster-sqlite,cluster-pg2", "--workloads", "private-10"]
    assert cli.main([*argv, "-o", str(out)]) == 0
    rows = {r["design"]: r for r in csv.DictReader((out / "summary.csv").open())}
    assert set(rows) == {"cluster-sqlite", "cluster-pg2"}
    assert all(r["clean"] == "True" for r in rows.values()), rows  # nothing lost across nodes
    base, two = rows["cluster-sqlite"], rows["cluster-pg2"]
    assert float(base["delivered_per_s"]) > 0 and base["pg_commits_per_s"] == ""
    for attr in ("delivered_per_s", "server_cpu_s_per_1000", "pg_commits_per_s",
                 "pg_xacts_per_s", "redis_publishes_per_s", "pg_cpu_pct"):  # fmt: skip
        assert float(two[attr]) > 0, attr
    printed = capsys.readouterr().out
    readme = (out / "README.md").read_text()
    for text in (printed, readme):
        assert "## Cluster" in text and "| cluster-sqlite | 1 | " in text
        assert "| cluster-pg2 | 2 | " in text and "(1.00×)" in text
    assert leftover_databases() == []  # each run dropped its database


def test_bench_refuses_an_unknown_design_naming_the_cluster_ones(tmp_path, capsys):
    with pytest.raises(SystemExit):
        cli.main(["-o", str(tmp_path), "--designs", "cluster-pg3"])
    assert "cluster-sqlite, cluster-pg1, cluster-pg2" in capsys.readouterr().err


def test_cluster_ratios_are_of_medians_against_the_baseline_of_the_same_run():
    def result(design, values, cpu):
        cells = [Cell(design, "private-100", "private", 100, delivered_per_s=v,
                      server_cpu_pct=cpu) for v in values]  # fmt: skip
        return Result(design, "private-100", "private", 100, cells)

    results = [result("cluster-sqlite", (10, 30, 20), 100.0), result("cluster-pg1", (5,), 50.0)]
    rate = lambda c: c.delivered_per_s  # noqa: E731
    assert cluster_results.ratio(results, "cluster-pg1", "private-100", rate) == 5 / 20
    cpu = lambda c: c.server_cpu_s_per_1000  # noqa: E731
    # 50 % of a core at 5 msgs/s: 0.1 s a message, 100 s per 1000; the baseline's median 50.
    assert cluster_results.ratio(results, "cluster-pg1", "private-100", cpu) == 100 / 50
    section = cluster_results.section(results)
    assert "| cluster-pg1 | 1 | 5 (0.25×) |" in section
    assert cluster_results.ratio(results, "cluster-pg2", "private-100", rate) is None
