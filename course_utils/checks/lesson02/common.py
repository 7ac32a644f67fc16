"""What lesson 02's checks of the simulator's streams share: the model they ask (2.2 and 2.4)."""

from __future__ import annotations

__all__ = ["MODEL"]

MODEL = "claude-haiku-5-5"
