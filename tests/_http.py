"""What the tests' HTTP clients share."""

from __future__ import annotations

import ssl

TLS = ssl.create_default_context()
"""One TLS context for the tests' HTTP clients (``verify=TLS``). The simulator speaks plain HTTP, yet
every client made with the default ``verify`` loads the CA bundle into a context of its own: about
24 ms of CPU per SDK client, and the suite makes hundreds. Nothing else about the client changes."""
