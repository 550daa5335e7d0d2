"""The console's script (issue 21 item 7): htmx vendored with its licence and a checksum note, every asset a
template names shipped in the package, and pages that need no inline script and no eval (the CSP allows neither)."""

from __future__ import annotations

import hashlib
import json
import re
from html.parser import HTMLParser

from service.console.app import SECURITY_HEADERS, STATIC

TEMPLATES = STATIC.parent / "templates"
VENDORED = STATIC / "vendor" / "VENDORED"
NOTE = re.compile(r"(?P<file>\S+): (?P<package>\S+) (?P<version>\S+) from npm .*, sha256 (?P<sha>[0-9a-f]{64})")


def _notes() -> list[re.Match]:
    lines = VENDORED.read_text().splitlines()
    notes = [NOTE.fullmatch(line) for line in lines]
    assert lines and all(notes), lines
    return notes


def _templates() -> dict[str, str]:
    return {path.name: path.read_text() for path in TEMPLATES.glob("*.html")}


class _Tags(HTMLParser):
    """The start tags of a template's HTML (Jinja syntax left in place is only text to the parser)."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict]] = []

    def handle_starttag(self, tag, attrs) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(text: str) -> list[tuple[str, dict]]:
    parser = _Tags()
    parser.feed(text)
    return parser.tags


class TestVendoredFiles:
    def test_each_vendored_file_matches_the_checksum_and_version_its_note_names(self):
        """A vendored file changed (or upgraded) without its note fails: the note's sha256 is the file's."""
        for note in _notes():
            data = (STATIC / "vendor" / note["file"]).read_bytes()
            assert hashlib.sha256(data).hexdigest() == note["sha"], note["file"]
            assert note["version"] in note["file"]  # the name carries the version: browsers may cache it for good

    def test_htmx_ships_with_its_licence(self):
        """The 0BSD licence text sits beside the file it covers."""
        [note] = [n for n in _notes() if n["package"] == "htmx.org"]
        assert "Zero-Clause BSD" in (STATIC / "vendor" / "htmx-LICENSE").read_text()
        assert note["version"].startswith("2.")

    def test_every_asset_a_template_names_is_in_the_package(self):
        """A script or stylesheet named in a template and missing from static/ (or named with another version)
        fails here, before a browser would show a page without it."""
        named = {attrs.get("src") or attrs.get("href") for text in _templates().values() for tag, attrs in _tags(text)
                 if tag in ("script", "link")}
        assert "/static/vendor/htmx-2.0.11.min.js" in named
        for path in named:
            assert path.startswith("/static/") and (STATIC / path.removeprefix("/static/")).is_file(), path


class TestNoInlineScript:
    def test_the_policy_allows_scripts_from_the_console_alone(self):
        """script-src is 'self': no inline script, no eval, no other host."""
        directives = dict(d.strip().split(" ", 1) for d in SECURITY_HEADERS["Content-Security-Policy"].split(";"))
        assert directives["script-src"] == "'self'" and directives["default-src"] == "'self'"

    def test_htmx_is_told_the_policy(self):
        """The meta config turns off what the policy forbids (eval, script tags in swapped HTML, inline indicator
        styles), keeps no page copies in sessionStorage and swaps a 422 page (a filter's error)."""
        [config] = [attrs["content"] for tag, attrs in _tags(_templates()["base.html"])
                    if tag == "meta" and attrs.get("name") == "htmx-config"]
        config = json.loads(config)
        assert config["allowEval"] is False and config["allowScriptTags"] is False
        assert config["includeIndicatorStyles"] is False and config["historyCacheSize"] == 0
        assert {"code": "422", "swap": True} in config["responseHandling"]

    def test_no_template_has_an_inline_script_or_event_handler(self):
        """Every <script> has a src; no on*= or hx-on attribute, no hx-vars/js: (each needs eval or inline code)."""
        for name, text in _templates().items():
            for tag, attrs in _tags(text):
                assert tag != "script" or attrs.get("src"), name
                bad = [a for a in attrs if a.startswith(("on", "hx-on", "data-hx-on", "hx-vars"))]
                assert bad == [], (name, tag, bad)
                assert not any(str(v).startswith("js:") for v in attrs.values()), (name, tag)
