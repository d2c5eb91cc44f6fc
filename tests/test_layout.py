"""The package's layout: stages are folders, and stages meet only through their
public names (``from ..fetch import RobotsCache``, never ``..fetch.robots``).

The exceptions load only after the parse workers fork (the fork rule: the network
stack must not be in the workers), so no stage's ``__init__`` may import them:
the engine and the commands import them by module, inside the function that needs
them."""

from __future__ import annotations

import ast
from pathlib import Path

import crawler

PACKAGE = Path(crawler.__file__).parent
STAGES = ("cli", "fetch", "frontier", "output", "parse", "sites")
LOADED_AFTER_THE_FORK = {"fetch.client", "fetch.transport", "fetch.browser", "fetch.cache"}
LOADED_WHEN_USED = {"frontier.redis"}  # redis-py takes a tenth of a second to import
COMMANDS = {"cli.main", "cli.bench", "cli.job", "cli.new", "cli.parse", "cli.shell"}


def _module(path: Path) -> str:
    return ".".join(path.relative_to(PACKAGE).with_suffix("").parts)


def _imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module under crawler) of each relative import in ``path``."""
    package = _module(path).split(".")[:-1]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[: len(package) - (node.level - 1)] if node.level > 1 else package
            found.append((node.lineno, ".".join([*base, *(node.module or "").split(".")]).strip(".")))
    return found


def test_stages_meet_only_through_their_public_names() -> None:
    crossings = []
    for path in sorted(PACKAGE.rglob("*.py")):
        here = _module(path).split(".")[0]
        for line, target in _imported_modules(path):
            stage, _, submodule = target.partition(".")
            lazy = target in LOADED_AFTER_THE_FORK | LOADED_WHEN_USED | COMMANDS
            if stage in STAGES and submodule and stage != here and not lazy:
                crossings.append(f"{path.relative_to(PACKAGE)}:{line} imports {target}")
    assert crossings == []


def test_no_stage_loads_the_network_stack_on_import() -> None:
    for stage in STAGES:
        init = PACKAGE / stage / "__init__.py"
        imported = {target for _, target in _imported_modules(init)}
        assert not imported & (LOADED_AFTER_THE_FORK | LOADED_WHEN_USED), stage


def test_the_top_level_holds_the_model_and_one_folder_per_stage() -> None:
    modules = sorted(path.stem for path in PACKAGE.glob("*.py"))
    folders = sorted(path.name for path in PACKAGE.iterdir() if (path / "__init__.py").exists())
    assert set(STAGES) <= set(folders)
    assert len(modules) <= 18, modules


TESTS = Path(__file__).parent


def _test_imports_of(path: Path) -> list[tuple[int, str]]:
    """(line, dotted module under tests) of each import in ``path`` that names one."""
    package = [TESTS.name, *path.relative_to(TESTS).parent.parts]
    found = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - (node.level - 1)] if node.level else []
            found.append((node.lineno, ".".join([*base, *(node.module or "").split(".")]).strip(".")))
        elif isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
    return [(line, module) for line, module in found if module.split(".")[0] == TESTS.name]


def test_tests_import_helpers_from_support_never_from_a_test_module_or_conftest() -> None:
    """A helper two test modules share lives in ``tests/support/``; conftest.py is
    for fixtures, which pytest hands out without an import."""
    wrong = []
    for path in sorted(TESTS.rglob("*.py")):
        for line, module in _test_imports_of(path):
            last = module.rpartition(".")[2]
            if last.startswith("test_") or last == "conftest":
                wrong.append(f"{path.relative_to(TESTS)}:{line} imports {module}")
    assert wrong == []
