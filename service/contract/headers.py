"""Kafka headers, the one type every layer names them with (issue 22 part 4).

A header is a name and a value that Kafka allows to be null. `Headers` is what a function takes or a record
holds — any sequence of them: a list while it is being built, a tuple in a frozen record."""

from __future__ import annotations

from collections.abc import Sequence

Header = tuple[str, bytes | None]
Headers = Sequence[Header]
