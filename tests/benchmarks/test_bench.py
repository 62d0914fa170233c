"""`chat-bench --quick`: the benchmark's runner end to end on tiny settings
(real servers of each kind, the real load generator), and its files."""

from __future__ import annotations

import csv
import json

import pytest

from benchmarks import cli
from benchmarks.matrix import Cell, Result
from benchmarks.results import targets


def test_quick_bench_runs_every_kind_and_writes_its_files(tmp_path, capsys):
    out = tmp_path / "bench"
    assert cli.main(["--quick", "-o", str(out)]) == 0
    names = {p.name for p in out.iterdir()}
    assert {"README.md", "runs.csv", "summary.csv", "results.json"} <= names
    assert {"private.png", "fanout.png", "latency.png", "idle.png"} <= names
    rows = list(csv.DictReader((out / "summary.csv").open()))
    designs = {r["design"] for r in rows}
    assert designs == set(cli.QUICK_DESIGNS)
    for row in rows:
        assert row["clean"] == "True", row  # no errors, nothing undelivered
        if row["workload"].startswith(("private", "fanout")):
            assert float(row["delivered_per_s"]) > 0
        if row["workload"].startswith("idle"):
            assert float(row["rss_per_conn_kib"]) > 0
    data = json.loads((out / "results.json").read_text())
    assert data["machine"]["cores"] >= 1
    readme = (out / "README.md").read_text()
    assert "| asyncio-relay |" in readme and "Targets" in readme
    assert "wrote" in capsys.readouterr().out


def test_bench_refuses_unknown_designs_and_workloads(tmp_path, capsys):
    for args in (["--designs", "reactor-gloabl"], ["--workloads", "private-7"]):
        with pytest.raises(SystemExit) as exc:
            cli.main(["-o", str(tmp_path), *args])
        assert exc.value.code == 2, f"{args} accepted"
    assert "no design 'reactor-gloabl'" in capsys.readouterr().err


def cell(design, workload, kind, value, **kw) -> Cell:
    return Cell(design, workload, kind, 100, delivered_per_s=value, **kw)


def test_targets_are_ratios_of_medians_of_the_same_run():
    results = [
        Result("reactor-global", "private-100", "private", 100,
               [cell("reactor-global", "private-100", "private", v) for v in (10, 30, 20)]),
        Result("asyncio-relay", "private-100", "private", 100,
               [cell("asyncio-relay", "private-100", "private", v) for v in (50, 40, 60)]),
    ]  # fmt: skip
    by_what = {t.what: t for t in targets(results)}
    relay = by_what["private N=100: reactor-global / asyncio relay"]
    assert relay.value == 20 / 50 and relay.met is False
    assert results[0].spread_pct("delivered_per_s") == 100 * (30 - 10) / 20
    missing = by_what["private-100: reactor-global / inline-global"]  # no inline cell
    assert missing.value is None and missing.met is None
