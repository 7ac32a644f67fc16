"""The simulator's HTTP handlers, one module per endpoint (``messages``, ``count_tokens``,
``models``, ``batches``) plus the ``/mock/*`` introspection routes; ``common`` holds what they
share (the endpoint wrapper, body reading, the error envelope)."""
