"""The dev stack's signing key (issue 23, item 7): readable by its owner only, from its first byte on."""

from __future__ import annotations

import os
import stat
import sys

from service.entrypoints.dev import dev_keys

# what the private key's mode was each time a file operation touched it with content in it (audit hooks
# cannot be removed: the hook only records while `_WATCHED` names a directory)
_WATCHED: list = []
_SEEN: list[int] = []


def _audit(event: str, args: tuple) -> None:
    if not _WATCHED or event not in ("os.chmod", "os.rename", "open"):
        return
    for name in os.listdir(_WATCHED[0]):
        path = os.path.join(_WATCHED[0], name)
        if "signing-key" in name and "pub" not in name and os.path.getsize(path) > 0:
            _SEEN.append(stat.S_IMODE(os.stat(path).st_mode))


sys.addaudithook(_audit)


class TestDevSigningKey:
    def test_the_private_key_is_never_readable_by_others(self, tmp_path):
        """Under umask 0 the private key holds key bytes only while it is 0600 (no write-then-chmod window)."""
        old_umask = os.umask(0)
        _WATCHED.append(str(tmp_path))
        try:
            private, public = dev_keys(tmp_path)
            _audit("open", ())  # the final state too
        finally:
            _WATCHED.clear()
            os.umask(old_umask)
        assert private.read_bytes().startswith(b"-----BEGIN") and public.exists()
        assert _SEEN and set(_SEEN) == {0o600}, [oct(m) for m in _SEEN]
        assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []

    def test_a_key_left_readable_is_tightened_and_kept(self, tmp_path):
        """A key an older run left 0644 is made 0600 on the next run, and the same key is kept."""
        private, _ = dev_keys(tmp_path)
        before = private.read_bytes()
        private.chmod(0o644)
        private, _ = dev_keys(tmp_path)
        assert stat.S_IMODE(private.stat().st_mode) == 0o600
        assert private.read_bytes() == before
