"""Per-node error policy: retries with backoff, fallback routing, continue-on-failure."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["parse_node_policy"]


def parse_node_policy(raw: Mapping[str, Any], settings: Mapping[str, Any], node: str) -> Any:
    """The error policy of one node, or ``None`` when nothing is configured."""
    return None
