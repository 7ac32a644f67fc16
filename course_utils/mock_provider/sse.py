"""Server-Sent Events framing, exactly as the API writes it: an ``event:`` line matching ``data.type``."""

from __future__ import annotations

import json
from typing import Any

__all__ = ["sse_event"]


def sse_event(data: dict[str, Any]) -> bytes:
    """Frame one event; the event name is the payload's ``type``."""
    return f"event: {data['type']}\ndata: {json.dumps(data, separators=(',', ':'), ensure_ascii=False)}\n\n".encode()
