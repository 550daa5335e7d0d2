"""The three locks against pyproject.toml, read offline with `packaging` (no index is asked).

* `requirements-dev.lock` (what `make` installs) pins every requirement of the project and of every extra to a
  version its range admits, and every package of `requirements.lock` at the production lock's version;
* `requirements-diagrams.lock` (the image's DIAGRAMS=true) is the `diagrams` extra at the dev lock's versions;
* `requirements.lock` (the production image) holds no package that only an extra asks for (no test tool, no
  grandalf): each of its packages is there for the service or for another of its packages;
* the Makefile installs the dev lock with hashes, and `make lock` writes all three (their headers say so).
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS: dict[str, list[str]] = PYPROJECT["optional-dependencies"]
GROUPS = {"dependencies": PYPROJECT["dependencies"], **EXTRAS}
LOCKS = {name: ROOT / name for name in ("requirements.lock", "requirements-dev.lock", "requirements-diagrams.lock")}
THE_PROJECT = "orderstatus (pyproject.toml)"  # how pip-compile names a requirement of pyproject in `# via`
REGENERATE = "run `make lock` (README: Locked dependencies)"


@dataclass
class Pin:
    specifier: str
    hashes: int = 0
    via: set[str] = field(default_factory=set)  # what asked for it, as pip-compile's annotation says

    @property
    def version(self) -> str | None:
        return self.specifier[2:] if re.fullmatch(r"==[\w.+!-]+", self.specifier) else None


def read_lock(text: str) -> dict[str, Pin]:
    """Normalised name -> Pin, from a pip-compile output (requirement lines, `--hash` lines, `# via` lines)."""
    pins: dict[str, Pin] = {}
    current: Pin | None = None
    via_list = False
    for line in text.splitlines():
        stripped = line.strip()
        if line and not line[0].isspace() and not line.startswith("#"):
            requirement = Requirement(line.rstrip("\\ "))
            current = pins[canonicalize_name(requirement.name)] = Pin(str(requirement.specifier))
            via_list = False
        elif current is None:
            continue
        elif stripped.startswith("--hash=sha256:"):
            current.hashes += 1
        elif stripped.startswith("# via"):
            rest = stripped.removeprefix("# via").strip()
            via_list = not rest
            current.via |= {rest} if rest else set()
        elif via_list and stripped.startswith("#   "):
            current.via.add(stripped.removeprefix("#").strip())
        else:
            via_list = False
    return pins


def unpinned(requirements: list[str], extra: str, pins: dict[str, Pin]) -> list[str]:
    """The requirements (of `extra`) that no exact pin of the lock satisfies, each with the reason."""
    problems = []
    for text in requirements:
        requirement = Requirement(text)
        if requirement.marker is not None and not requirement.marker.evaluate({"extra": extra}):
            continue  # not for this platform
        pin = pins.get(canonicalize_name(requirement.name))
        if pin is None:
            problems.append(f"{text}: not in the lock")
        elif pin.version is None or not requirement.specifier.contains(pin.version, prereleases=True):
            problems.append(f"{text}: the lock has {pin.specifier}")
    return problems


def extra_only(production: dict[str, Pin]) -> list[str]:
    """Packages of the production lock that only an extra explains: named by an extra and not by the service's
    own dependencies, yet asked for by the project itself (compiled with an extra), or by nothing in the lock."""
    runtime = {canonicalize_name(Requirement(r).name) for r in PYPROJECT["dependencies"]}
    named = {canonicalize_name(Requirement(r).name) for group in EXTRAS.values() for r in group} - runtime
    problems = [f"{name}: via {sorted(production[name].via)}" for name in sorted(named & set(production))
                if THE_PROJECT in production[name].via or not production[name].via & set(production)]
    def explained(via: str) -> bool:  # by a package of this lock, or by pyproject (its build backend too)
        return via in production or via.startswith("orderstatus (pyproject.toml")

    problems += [f"{name}: via {sorted(pin.via)}, not in this lock" for name, pin in production.items()
                 if pin.via and not any(explained(via) for via in pin.via)]
    return problems


def pins_of(name: str) -> dict[str, Pin]:
    return read_lock(LOCKS[name].read_text())


class TestDevelopmentLock:
    @pytest.mark.parametrize("group", GROUPS)
    def test_every_requirement_is_pinned_in_the_dev_lock(self, group):
        """Each requirement of the project and of each extra has an exact pin in the dev lock inside its range."""
        assert not unpinned(GROUPS[group], group, pins_of("requirements-dev.lock")), REGENERATE

    def test_the_dev_lock_carries_the_production_lock_at_its_versions(self):
        """Every package of requirements.lock is in the dev lock at the same version: tests run what ships."""
        development = pins_of("requirements-dev.lock")
        differ = {name: (pin.specifier, development[name].specifier if name in development else None)
                  for name, pin in pins_of("requirements.lock").items()
                  if name not in development or development[name].specifier != pin.specifier}
        assert not differ, f"production vs dev: {differ}; {REGENERATE}"

    def test_the_diagrams_lock_is_the_extra_at_the_dev_locks_versions(self):
        """requirements-diagrams.lock satisfies the diagrams extra, and each of its pins equals the dev lock's."""
        diagrams, development = pins_of("requirements-diagrams.lock"), pins_of("requirements-dev.lock")
        assert not unpinned(EXTRAS["diagrams"], "diagrams", diagrams), REGENERATE
        assert {n: p.specifier for n, p in diagrams.items()} == {n: development[n].specifier for n in diagrams}

    @pytest.mark.parametrize("lock", ["requirements-dev.lock", "requirements-diagrams.lock"])
    def test_every_pin_is_exact_and_hashed(self, lock):
        """Every entry is name==version with at least one sha256 (pip --require-hashes installs it)."""
        pins = pins_of(lock)
        assert pins and all(pin.version and pin.hashes >= 1 for pin in pins.values()), \
            {n: p for n, p in pins.items() if not (p.version and p.hashes)}

    def test_a_pin_outside_the_range_or_missing_is_reported(self):
        """Negative control: the check names a requirement whose pin is outside its range, and a missing one."""
        pins = read_lock("pytest==7.0.0 \\\n    --hash=sha256:00\n    # via orderstatus (pyproject.toml)\n")
        assert unpinned(["pytest>=8", "hypothesis>=6"], "test", pins) == [
            "pytest>=8: the lock has ==7.0.0", "hypothesis>=6: not in the lock"]


class TestProductionLock:
    def test_no_package_only_an_extra_needs(self):
        """requirements.lock holds no test, bench, dev-stack or diagrams package: each is there for the service."""
        production = pins_of("requirements.lock")
        assert "grandalf" not in production and "pytest" not in production
        assert not extra_only(production), REGENERATE

    def test_a_lock_compiled_with_an_extra_is_caught(self):
        """Negative control: a production lock with pytest (asked for by the project) and pluggy (by pytest)."""
        lock = ("pytest==9.2.0 \\\n    --hash=sha256:00\n    # via orderstatus (pyproject.toml)\n"
                "pluggy==1.7.0 \\\n    --hash=sha256:00\n    # via pytest\n"
                "packaging==26.4 \\\n    --hash=sha256:00\n    # via\n    #   aiokafka\n    #   pytest\n"
                "aiokafka==0.14.0 \\\n    --hash=sha256:00\n    # via orderstatus (pyproject.toml)\n")
        assert extra_only(read_lock(lock)) == ["pytest: via ['orderstatus (pyproject.toml)']"]
        clean = ("packaging==26.4 \\\n    --hash=sha256:00\n    # via aiokafka\n"
                 "aiokafka==0.14.0 \\\n    --hash=sha256:00\n    # via orderstatus (pyproject.toml)\n")
        assert extra_only(read_lock(clean)) == []


MAKEFILE = (ROOT / "Makefile").read_text()


def recipe(target: str) -> tuple[str, str]:
    """(prerequisites, recipe lines joined) of one Makefile rule."""
    match = re.search(rf"^{re.escape(target)}:([^\n]*)\n((?:\t[^\n]*\n)+)", MAKEFILE, re.MULTILINE)
    assert match, target
    return match.group(1), re.sub(r"\\\n\s*", " ", match.group(2))


class TestMakefile:
    def test_the_venv_is_installed_from_the_dev_lock_with_hashes(self):
        """$(STAMP) rebuilds when the lock changes, installs it with --require-hashes, then the project alone."""
        prerequisites, lines = recipe("$(STAMP)")
        assert "requirements-dev.lock" in prerequisites.split() and "pyproject.toml" in prerequisites.split()
        installs = re.findall(r"pip install ([^\n]*)", lines)
        assert [i for i in installs if "--require-hashes" in i and "-r requirements-dev.lock" in i]
        assert all("-r requirements-dev.lock" in i or ("--no-deps" in i and "--no-index" in i and "-e ." in i)
                   for i in installs), installs

    def test_nothing_else_is_installed_loosely(self):
        """No other rule pip-installs (make bench used to add its extra unlocked); make lock's pip-tools is pinned."""
        installs = re.findall(r"pip install ([^\n]*)", MAKEFILE)
        loose = [i for i in installs if "requirements-dev.lock" not in i and "--no-index" not in i
                 and i.split()[-1] != "$(PIP_TOOLS)"]
        assert not loose, loose
        assert re.search(r"^PIP_TOOLS\s*:=\s*pip-tools==[\d.]+$", MAKEFILE, re.MULTILINE)

    @pytest.mark.parametrize("lock", LOCKS)
    def test_make_lock_writes_each_lock_and_its_header_says_so(self, lock):
        """`make lock` writes the lock (--output-file), whose header names `make lock` as its command."""
        _, lines = recipe("lock")
        assert f"--output-file={lock}" in lines
        assert re.search(r"^# by the following command:\n#\n#    make lock\n", LOCKS[lock].read_text(), re.MULTILINE)
