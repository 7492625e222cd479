"""The layer contract: one direction of imports, checked by import-linter and by what importing loads."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src" / "vidadv"
_RUN_LAYER = "vidadv.experiments"


def _loaded_after(statement: str) -> set[str]:
    code = f"import sys; {statement}; print('\\n'.join(m for m in sys.modules if m.startswith('vidadv')))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    ("statement", "forbidden"),
    [
        ("import vidadv.attacks", (_RUN_LAYER, "vidadv.evaluation", "vidadv.analysis", "vidadv.training")),
        ("import vidadv.models", ("vidadv.attacks", _RUN_LAYER, "vidadv.evaluation", "vidadv.training")),
        ("import vidadv.data", ("vidadv.models", "vidadv.attacks", "vidadv.experiments")),
    ],
)
def test_importing_a_layer_loads_nothing_above_it(statement: str, forbidden: tuple[str, ...]) -> None:
    loaded = _loaded_after(statement)
    above = sorted(m for m in loaded if m.startswith(forbidden))
    assert not above, f"{statement} loads {above}"


def test_import_linter_contract_is_kept() -> None:
    exe = shutil.which("lint-imports") or str(Path(sys.executable).with_name("lint-imports"))
    if not Path(exe).exists():
        pytest.skip("import-linter is not installed (it is part of the test extra)")
    result = subprocess.run([exe], capture_output=True, text=True, cwd=ROOT)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-2000:]


def _function_local_vidadv_imports(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(), filename=str(path))
    lines = path.read_text().splitlines()
    found = []
    for func in ast.walk(tree):
        if not isinstance(func, ast.FunctionDef | ast.AsyncFunctionDef):
            continue
        for node in ast.walk(func):
            names = []
            if isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level > 0:
                names = ["vidadv (relative)"]
            elif isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            if any(n.startswith("vidadv") for n in names):
                found.append((node.lineno, lines[node.lineno - 1]))
    return found


def test_vidadv_imports_sit_at_module_top() -> None:
    """A function-local vidadv import is allowed only in cli.py (start-up time), with a comment saying so."""
    offenders = []
    for path in sorted(SRC.rglob("*.py")):
        for lineno, line in _function_local_vidadv_imports(path):
            if path.name == "cli.py" and "#" in line:
                continue
            offenders.append(f"{path.relative_to(ROOT)}:{lineno}: {line.strip()}")
    assert not offenders, "function-local vidadv imports:\n" + "\n".join(offenders)
