"""Text from outside (message bytes, header values, event fields) made safe to print on a terminal."""

from __future__ import annotations


def printable(data: bytes, limit: int) -> str:
    """Bytes as text safe for a terminal: UTF-8 where it is valid and printable, every other byte or
    character escaped (\\xNN, \\n, \\uNNNN); at most `limit` bytes, with a note of what was cut."""
    text = data[:limit].decode("utf-8", "surrogateescape")  # an invalid byte becomes U+DC80..U+DCFF
    shown = "".join(ch if ch.isprintable() and ch != "\\" else _escape(ch) for ch in text)
    if len(data) > limit:
        shown += f" ... [{len(data) - limit} more bytes not shown]"
    return shown


def printable_text(value: object, limit: int = 500) -> str:
    """Any value (an event field) as printable text: strings escaped like bytes, others by str()."""
    text = value if isinstance(value, str) else str(value)
    return printable(text.encode("utf-8", "surrogatepass"), limit)


def _escape(ch: str) -> str:
    if ch == "\\":
        return "\\\\"
    escaped = {"\n": "\\n", "\r": "\\r", "\t": "\\t"}.get(ch)
    if escaped:
        return escaped
    code = ord(ch)
    if 0xDC80 <= code <= 0xDCFF:  # a byte that is not UTF-8
        return f"\\x{code - 0xDC00:02x}"
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"
