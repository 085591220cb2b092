"""The import contracts in pyproject.toml (``[tool.importlinter]``): the layers hold on this
tree, and a deliberate break of each contract in a copy of it is reported by name."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("routing", "fleet", "dispatch", "simulations", "api", "benchmarks")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

# One import per contract, each against the rule it breaks (module, line appended to it).
BREAKS = {
    "dispatch/triage.py": "import fastapi",  # a pure package importing a web framework
    "routing/points.py": "import dispatch.lifecycle",  # a lower layer importing a higher one
    "fleet/model.py": "import routing.provider",  # routing and fleet are independent
    "simulations/erlang.py": "import benchmarks.routing",  # product code importing benchmarks
}


def _lint_imports(cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(cwd)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-logo", "--no-cache", str(cwd / "pyproject.toml")],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


@pytest.fixture(scope="module")
def broken_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the project's Python sources and pyproject.toml with the imports of
    :data:`BREAKS` added."""
    tree = tmp_path_factory.mktemp("broken-tree")
    shutil.copy(ROOT / "pyproject.toml", tree)
    for package in PACKAGES:
        for source in (ROOT / package).rglob("*.py"):
            target = tree / source.relative_to(ROOT)
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy(source, target)
    for module, line in BREAKS.items():
        with (tree / module).open("a", encoding="utf-8") as f:
            f.write(f"\n{line}  # deliberate break\n")
    return tree


def test_the_project_keeps_every_import_contract() -> None:
    """``lint-imports`` passes on this tree: layers, pure packages, benchmarks kept apart."""
    result = _lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Contracts: 3 kept, 0 broken." in result.stdout


def test_a_deliberate_break_of_each_contract_fails(broken_tree: Path) -> None:
    """Each added import breaks its contract, and the report names the offending import."""
    result = _lint_imports(broken_tree)
    out = result.stdout
    assert result.returncode == 1, out + result.stderr
    assert "Contracts: 0 kept, 3 broken." in out
    for contract in (
        "Imports point down: api > simulations > dispatch > routing | fleet BROKEN",
        "Pure packages never import the web, database or settings frameworks BROKEN",
        "Only the rescue bench commands import the benchmarks BROKEN",
    ):
        assert contract in out
    for importer, imported in (
        ("dispatch.triage", "fastapi"),
        ("routing.points", "dispatch.lifecycle"),
        ("fleet.model", "routing.provider"),
        ("simulations.erlang", "benchmarks.routing"),
    ):
        assert f"{importer} -> {imported}" in out, out
