"""Chunked transfer encoding on the wire: raw HTTP/1.1 bytes from a real socket.

A streamed response has no ``Content-Length`` (its length is unknown when it starts), so HTTP/1.1
sends it as ``Transfer-Encoding: chunked``: each chunk is its size in hex, ``\\r\\n``, the bytes,
``\\r\\n``; a zero-size chunk ends the body. Every SSE write of the server becomes one chunk, and
a proxy that buffers (instead of forwarding chunk by chunk) is what turns a stream back into a
spinner.
"""

from __future__ import annotations

import json
import socket
import time
from dataclasses import dataclass, field
from typing import Any

__all__ = ["RawResponse", "raw_request", "decode_chunked"]


@dataclass
class RawResponse:
    """The bytes a socket received, as they arrived."""

    head: bytes
    """Status line and headers, up to and including the blank line."""
    body: bytes
    """The body exactly as sent (still chunk-framed)."""
    reads: list[tuple[float, int]] = field(default_factory=list)
    """``(seconds since the request, bytes)`` for each ``recv``."""

    @property
    def headers(self) -> dict[str, str]:
        lines = self.head.decode("latin-1").split("\r\n")[1:]
        return {k.strip().lower(): v.strip() for k, _, v in (line.partition(":") for line in lines if line)}

    @property
    def status_line(self) -> str:
        return self.head.split(b"\r\n", 1)[0].decode("latin-1")


def raw_request(
    host: str,
    port: int,
    path: str,
    *,
    method: str = "GET",
    body: Any = None,
    headers: dict[str, str] | None = None,
    timeout: float = 30.0,
    max_bytes: int = 1 << 20,
) -> RawResponse:
    """Send one HTTP/1.1 request over a plain socket and return the raw response bytes.

    ``body`` that is not bytes is sent as JSON. Reads until the server closes the connection
    (``Connection: close``) or the chunked body's final zero-size chunk arrives.
    """
    payload = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}:{port}", "Connection: close"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if payload is not None:
        lines += ["Content-Type: application/json", f"Content-Length: {len(payload)}"]
    request = ("\r\n".join(lines) + "\r\n\r\n").encode() + (payload or b"")
    received = bytearray()
    reads: list[tuple[float, int]] = []
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        started = time.monotonic()
        sock.sendall(request)
        while len(received) < max_bytes:
            data = sock.recv(65536)
            if not data:
                break
            reads.append((time.monotonic() - started, len(data)))
            received += data
            if received.endswith(b"\r\n0\r\n\r\n"):
                break
    head, sep, rest = bytes(received).partition(b"\r\n\r\n")
    return RawResponse(head + sep, rest, reads)


def decode_chunked(body: bytes) -> list[bytes]:
    """Split a chunk-framed body into its chunks' payloads (the final empty chunk excluded).

    Raises ``ValueError`` on malformed framing, so a demo cannot silently mislead.
    """
    chunks: list[bytes] = []
    pos = 0
    while True:
        end = body.find(b"\r\n", pos)
        if end < 0:
            raise ValueError(f"no chunk-size line at byte {pos}")
        size = int(body[pos:end].split(b";", 1)[0], 16)  # chunk extensions after ';' are ignored
        if size == 0:
            return chunks
        start = end + 2
        chunks.append(body[start : start + size])
        if body[start + size : start + size + 2] != b"\r\n":
            raise ValueError(f"chunk at byte {pos} is not followed by CRLF")
        pos = start + size + 2
