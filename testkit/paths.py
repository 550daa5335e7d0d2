"""Where the repository and its sample data are (the kit runs from a checkout, never from a wheel)."""

from __future__ import annotations

from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SAMPLES = REPO / "service" / "devkit" / "samples"
SAMPLE_RULES = SAMPLES / "rules.yaml"
SAMPLE_ORDERS = SAMPLES / "orders.jsonl"
