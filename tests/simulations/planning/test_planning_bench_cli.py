"""``rescue bench pmedian|mclp``: one JSON line per instance, errors as one stderr line and
exit code 2."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from api.cli import app

DATA = Path(__file__).resolve().parents[2] / "data"
runner = CliRunner()


def test_bench_pmedian_prints_json_lines() -> None:
    """Two files give two JSON lines with the published optima, proven, gap 0."""
    files = [str(DATA / "orlib_pmed" / f"pmed{k}.txt") for k in (1, 5)]
    result = runner.invoke(app, ["bench", "pmedian", *files])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert [(r["instance"], r["n"], r["p"], r["objective"]) for r in lines] == [
        ("pmed1", 100, 5, 5819),
        ("pmed5", 100, 33, 1355),
    ]
    assert all(r["proven_optimal"] and r["gap"] == 0.0 and r["seconds"] >= 0 for r in lines)


def test_bench_mclp_swain() -> None:
    """Swain at S = 10, p = 4 covers 581 of 640, proven."""
    result = runner.invoke(
        app, ["bench", "mclp", str(DATA / "mclp_swain" / "swain.txt"), "--radius", "10", "--p", "4"]
    )
    assert result.exit_code == 0, result.output
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["instance"] == "swain"
    assert record["objective"] == 581
    assert record["proven_optimal"] is True


def test_bench_errors_exit_2() -> None:
    """A missing file or a negative radius is one 'error:' line and exit code 2."""
    missing = runner.invoke(app, ["bench", "pmedian", "/nonexistent/pmed99.txt"])
    assert missing.exit_code == 2
    assert "no such file" in missing.output
    bad = runner.invoke(
        app, ["bench", "mclp", str(DATA / "mclp_swain" / "swain.txt"), "--radius", "-1", "--p", "2"]
    )
    assert bad.exit_code == 2
    assert "radius must be" in bad.output


def test_bench_pmedian_generate_prints_seeded_records() -> None:
    """--generate N,P[,SEED] adds one proven record per spec after the files, named by its
    size and seed; the same spec gives the same objective."""
    result = runner.invoke(
        app,
        [
            "bench", "pmedian", str(DATA / "orlib_pmed" / "pmed1.txt"),
            "--generate", "60,4,7", "--generate", "60,4,7", "--generate", "50,5",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    assert [r["instance"] for r in lines] == [
        "pmed1",
        "beasley-60-4-s7",
        "beasley-60-4-s7",
        "beasley-50-5-s0",
    ]
    assert [(r["n"], r["p"], r.get("seed")) for r in lines[1:]] == [
        (60, 4, 7),
        (60, 4, 7),
        (50, 5, 0),
    ]
    assert lines[1]["objective"] == lines[2]["objective"]
    assert all(r["proven_optimal"] and r["gap"] == 0.0 for r in lines)


def test_bench_pmedian_bad_generate_spec_exits_2() -> None:
    """A malformed --generate spec is refused before anything is solved or printed; no
    file and no spec is an error too."""
    for spec, reason in [
        ("500", "expected N,P or N,P,SEED"),
        ("500,x", "N, P and SEED must be integers"),
        ("500,600", "P must be in 1..N"),
        ("2,1", "N must be >= 3"),
        ("50,5,-1", "SEED must be >= 0"),
    ]:
        bad = runner.invoke(
            app,
            ["bench", "pmedian", str(DATA / "orlib_pmed" / "pmed1.txt"), "--generate", spec],
        )
        assert bad.exit_code == 2, spec
        assert f"--generate {spec!r}: {reason}" in bad.output
        assert "{" not in bad.stdout
    empty = runner.invoke(app, ["bench", "pmedian"])
    assert empty.exit_code == 2
    assert "give OR-Library pmedN.txt files, --generate N,P[,SEED] or --orlib-sizes" in empty.output


def test_bench_pmedian_summary_names_the_slowest() -> None:
    """--summary closes the records with one line: the count, how many are proven, the total
    of their seconds and the slowest instance with its seconds."""
    result = runner.invoke(
        app,
        [
            "bench", "pmedian", str(DATA / "orlib_pmed" / "pmed1.txt"),
            "--generate", "50,5", "--generate", "60,4,7", "--summary",
        ],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in result.stdout.splitlines() if x.startswith("{")]
    records, summary = lines[:-1], lines[-1]
    assert [r["instance"] for r in records] == ["pmed1", "beasley-50-5-s0", "beasley-60-4-s7"]
    slowest = max(records, key=lambda r: r["seconds"])
    assert summary == {
        "summary": "pmedian",
        "instances": 3,
        "proven_optimal": 3,
        "seconds_total": round(sum(r["seconds"] for r in records), 3),
        "slowest": slowest["instance"],
        "slowest_seconds": slowest["seconds"],
    }


def test_orlib_sizes_are_pmed21_40_up_to_p_90() -> None:
    """--orlib-sizes generates the 15 pmed21-40 sizes with p <= 90: n = 500-900 with
    p = 5, 10 and n/10 each."""
    from benchmarks.planning import ORLIB_LARGE_SIZES

    expected = tuple((n, p) for n in (500, 600, 700, 800, 900) for p in (5, 10, n // 10))
    assert expected == ORLIB_LARGE_SIZES
