"""The one error operator tools raise for a refusal."""

from __future__ import annotations


class OpsError(RuntimeError):
    """A refusal with a one-line explanation for the operator."""
