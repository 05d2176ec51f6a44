"""The source roots: `operator/` must never shadow the standard library's `operator`."""

from __future__ import annotations

import subprocess
import sys
import sysconfig
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_operator_is_the_standard_library_module_in_tests() -> None:
    import operator

    assert Path(operator.__file__).parent == Path(sysconfig.get_paths()["stdlib"])
    assert operator.add(2, 3) == 5


def test_operator_is_the_standard_library_module_from_the_repository_root() -> None:
    # `python -c` puts the current directory (the repository root, holding operator/) first on sys.path.
    code = "import operator, sys; print(operator.__file__); assert operator.itemgetter(1)([0, 7]) == 7"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True)
    assert Path(out.stdout.strip()).parent == Path(sysconfig.get_paths()["stdlib"])


def test_source_roots_have_no_init_and_both_packages_import() -> None:
    assert not (ROOT / "operator" / "__init__.py").exists()
    assert not (ROOT / "runtime" / "__init__.py").exists()
    import cairn
    import cairn_operator

    assert Path(cairn.__file__).is_relative_to(ROOT / "runtime")
    assert Path(cairn_operator.__file__).is_relative_to(ROOT / "operator")
