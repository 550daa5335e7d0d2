"""tests/unit starts no process unless the test says so: a test that starts one (itself or through a helper of
its module) carries `@pytest.mark.subprocess`, so the rest of the unit suite is processes-free by construction."""

from __future__ import annotations

import ast
from pathlib import Path

UNIT = Path(__file__).resolve().parent
STARTERS = {"subprocess", "Popen", "create_subprocess_exec", "create_subprocess_shell", "os.system", "os.fork"}


def _starts_directly(node: ast.AST) -> bool:
    for sub in ast.walk(node):
        if isinstance(sub, ast.Name) and sub.id in STARTERS:
            return True
        if isinstance(sub, ast.Attribute) and (sub.attr in STARTERS or ast.unparse(sub) in STARTERS):
            return True
    return False


def _marked(function: ast.FunctionDef | ast.AsyncFunctionDef) -> bool:
    return any(ast.unparse(d).startswith("pytest.mark.subprocess") for d in function.decorator_list)


def unmarked_process_starters(source: str) -> list[str]:
    """The test functions of a module that start a process (directly or through one of the module's functions,
    followed transitively) without the subprocess marker."""
    tree = ast.parse(source)
    functions = {n.name: n for n in ast.walk(tree) if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef))}
    starting = {name for name, f in functions.items() if _starts_directly(f)}
    while True:
        more = {name for name, f in functions.items() if name not in starting
                and any(isinstance(s, ast.Name) and s.id in starting for s in ast.walk(f))}
        if not more:
            break
        starting |= more
    return sorted(name for name in starting if name.startswith("test_") and not _marked(functions[name]))


def test_every_unit_test_that_starts_a_process_is_marked():
    """No test in tests/unit starts a process without @pytest.mark.subprocess."""
    found = {path.name: names for path in sorted(UNIT.glob("test_*.py"))
             if (names := unmarked_process_starters(path.read_text(encoding="utf-8")))}
    assert found == {}, f"unit tests that start a process unmarked (mark them or move them to integration): {found}"


def test_the_check_finds_a_test_that_starts_a_process_through_a_helper():
    """The check is not vacuous: an unmarked test calling a helper that runs a process is found, a marked one is not."""
    source = '''
import subprocess, pytest
def helper():
    return subprocess.run(["true"])
def test_unmarked():
    helper()
@pytest.mark.subprocess
def test_marked():
    helper()
def test_no_process():
    assert 1 + 1 == 2
'''
    assert unmarked_process_starters(source) == ["test_unmarked"]
