"""Facts about the Anthropic API that both the simulator and the reference library need.

One definition each, with its source, so the simulator and the lessons cannot drift apart.
"""

from __future__ import annotations

import re

__all__ = ["CUSTOM_ID_PATTERN"]

CUSTOM_ID_PATTERN = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
"""What a Message Batches request's ``custom_id`` must match: the API's 400 for a bad one quotes this
pattern ("String should match pattern ..."); the SDK's ``batch_create_params.Request`` documents
only that it must be unique within the batch. Used to validate (simulator) and to build ids (lesson 04)."""
