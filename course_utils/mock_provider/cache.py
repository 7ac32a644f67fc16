"""The prompt cache: prefixes, breakpoints, TTLs and the usage split the API reports.

The rules follow https://platform.claude.com/docs/en/build-with-claude/prompt-caching:

* The prompt is one prefix rendered in the order tools -> system -> messages. A ``cache_control``
  on a tool definition, a system text block or a message content block is a *breakpoint*: the
  prefix up to and including that block can be written to the cache.
* At most 4 breakpoints per request (more is a 400). Top-level ``cache_control`` (automatic
  caching) puts a breakpoint on the last cacheable block and uses one of the 4 slots.
* ``ttl`` is ``"5m"`` (default) or ``"1h"``; 1-hour entries must come before 5-minute ones.
* A read is an exact prefix match. The system checks each breakpoint and up to 20 earlier block
  boundaries (the lookback window) for an entry, and reads the longest one found.
* Usage: ``cache_read_input_tokens`` = the read prefix (A); ``cache_creation`` = everything from
  A to the last breakpoint (C), billed at 1h for the span up to the last 1h breakpoint (B) and at
  5m for the rest; ``input_tokens`` = only what follows the last breakpoint.
* A prefix shorter than the model's minimum cacheable length is silently not cached.
* Entries are isolated per workspace ("Caches will be isolated per workspace": every key of one
  workspace shares them; ``scope_of`` names a key's workspace) and per model; a hit refreshes the TTL.

Token positions are measured with exactly the per-part counts of :func:`tokens.count_request`,
so ``cache_read + cache_creation + input_tokens == count_request(body)`` always holds.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import dataclass
from typing import Any, Callable, Mapping

from ..clock import Clock
from ..tokens import (
    MESSAGE_OVERHEAD,
    REQUEST_OVERHEAD,
    SYSTEM_OVERHEAD,
    TOOLS_OVERHEAD,
    count_blocks,
    count_tool,
)
from .errors import InvalidRequest

__all__ = [
    "MAX_BREAKPOINTS",
    "LOOKBACK_BLOCKS",
    "TTL_SECONDS",
    "Boundary",
    "Breakpoint",
    "PrefixPlan",
    "CacheUsage",
    "CacheEntry",
    "PromptCache",
    "plan_prefixes",
    "cached_fraction",
]

MAX_BREAKPOINTS = 4
"""Blocks with ``cache_control`` allowed in one request (automatic caching takes one slot)."""
LOOKBACK_BLOCKS = 20
"""Earlier block boundaries checked for a hit before each breakpoint."""
TTL_SECONDS: dict[str, float] = {"5m": 300.0, "1h": 3600.0}
"""Lifetime of an entry, refreshed on every hit."""

_UNCACHEABLE_TYPES = frozenset({"thinking", "redacted_thinking"})


@dataclass(frozen=True)
class Boundary:
    """The end of one block in render order, with the prefix it closes."""

    index: int
    path: str
    tokens: int
    """Cumulative input tokens of the prefix up to and including this block."""
    digest: str
    """Hash of that prefix (``cache_control`` markers excluded)."""
    cacheable: bool


@dataclass(frozen=True)
class Breakpoint:
    """A boundary marked with ``cache_control``."""

    boundary: Boundary
    ttl: str
    automatic: bool = False

    @property
    def tokens(self) -> int:
        return self.boundary.tokens

    @property
    def digest(self) -> str:
        return self.boundary.digest


@dataclass(frozen=True)
class PrefixPlan:
    """Every block boundary and breakpoint of a request, and its total input tokens."""

    boundaries: tuple[Boundary, ...]
    breakpoints: tuple[Breakpoint, ...]
    total_tokens: int


@dataclass(frozen=True)
class CacheUsage:
    """How one request's input tokens split between cache reads, cache writes and plain input."""

    cache_read_input_tokens: int = 0
    cache_creation_input_tokens: int = 0
    ephemeral_5m_input_tokens: int = 0
    ephemeral_1h_input_tokens: int = 0
    input_tokens: int = 0

    @property
    def total_input_tokens(self) -> int:
        """Every input token of the request, however billed (equals ``count_request``)."""
        return self.cache_read_input_tokens + self.cache_creation_input_tokens + self.input_tokens

    def as_usage(self) -> dict[str, Any]:
        """The input part of the API's ``usage`` object."""
        return {
            "input_tokens": self.input_tokens,
            "cache_creation_input_tokens": self.cache_creation_input_tokens,
            "cache_read_input_tokens": self.cache_read_input_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": self.ephemeral_5m_input_tokens,
                "ephemeral_1h_input_tokens": self.ephemeral_1h_input_tokens,
            },
        }


@dataclass(frozen=True)
class CacheEntry:
    """One cached prefix."""

    api_key: str
    model: str
    digest: str
    tokens: int
    ttl: str
    created_at: float
    expires_at: float


# --------------------------------------------------------------------------- prefixes


def _canonical(value: Any) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str).encode()


def _strip_marker(block: Mapping[str, Any]) -> dict[str, Any]:
    # The marker is not prompt content: moving or adding it must not change what the prefix is.
    out = {k: v for k, v in block.items() if k != "cache_control"}
    inner = out.get("content")
    if out.get("type") == "tool_result" and isinstance(inner, list):
        out["content"] = [_strip_marker(b) if isinstance(b, Mapping) else b for b in inner]
    return out


def _ttl_of(marker: Any, path: str) -> str:
    ttl = marker.get("ttl", "5m") if isinstance(marker, Mapping) else "5m"
    if ttl not in TTL_SECONDS:
        where = f"{path}.cache_control" if path else "cache_control"
        raise InvalidRequest(f"{where}.ttl: Input should be '5m' or '1h'")
    return ttl


def _is_cacheable(block: Mapping[str, Any]) -> bool:
    if block.get("type") in _UNCACHEABLE_TYPES:
        return False
    return not (block.get("type") == "text" and not block.get("text"))


def plan_prefixes(body: Mapping[str, Any]) -> PrefixPlan:
    """Walk a request body in render order and locate every prefix and breakpoint.

    ``body`` should already have passed ``parse_messages_request`` (blocks are dicts).

    Raises :class:`InvalidRequest` for more than 4 breakpoints or a 1h breakpoint after a 5m one.
    """
    hasher = hashlib.sha256(b"prefix-v1")
    running = REQUEST_OVERHEAD
    boundaries: list[Boundary] = []
    marked: list[tuple[Boundary, str]] = []

    def close(path: str, block: Mapping[str, Any], tokens: int, part: str) -> None:
        nonlocal running
        running += tokens
        hasher.update(_canonical([part, _strip_marker(block)]))
        b = Boundary(len(boundaries), path, running, hasher.copy().hexdigest(), _is_cacheable(block))
        boundaries.append(b)
        if block.get("cache_control") is not None:
            marked.append((b, _ttl_of(block["cache_control"], path)))

    tools = body.get("tools") or []
    if tools:
        running += TOOLS_OVERHEAD
        for i, tool in enumerate(tools):
            close(f"tools.{i}", tool, count_tool(tool), "tool")

    system = body.get("system")
    if system:
        running += SYSTEM_OVERHEAD
        blocks = [{"type": "text", "text": system}] if isinstance(system, str) else list(system)
        for i, block in enumerate(blocks):
            close(f"system.{i}", block, count_blocks([block]), "system")

    messages = body.get("messages") or []
    if messages:
        # Per the docs, changing tool_choice or thinking settings invalidates the message cache but
        # not the tools/system cache, so they enter the hash exactly where messages begin.
        hasher.update(_canonical(["settings", body.get("tool_choice"), body.get("thinking")]))
    for mi, message in enumerate(messages):
        running += MESSAGE_OVERHEAD
        hasher.update(_canonical(["role", message.get("role")]))
        content = message.get("content", "")
        if isinstance(content, str):
            if content:
                close(f"messages.{mi}.content", {"type": "text", "text": content}, count_blocks(content), "msg")
            continue
        for bi, block in enumerate(content):
            close(f"messages.{mi}.content.{bi}", block, count_blocks([block]), "msg")

    breakpoints = [Breakpoint(b, ttl) for b, ttl in marked]
    auto = body.get("cache_control")
    if auto is not None:
        # Prompt-caching page, automatic caching's edge cases: "If the last block already has an
        # explicit cache_control with the same TTL, automatic caching is a no-op. If the last block
        # has an explicit cache_control with a different TTL, the API returns a 400 error. If 4
        # explicit block-level breakpoints already exist, the API returns a 400 error."
        ttl = _ttl_of(auto, "")
        if len(breakpoints) >= MAX_BREAKPOINTS:  # no slot left for the automatic breakpoint
            raise InvalidRequest(
                f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. "
                f"Found {len(breakpoints) + 1}."
            )
        last = next((b for b in reversed(boundaries) if b.cacheable), None)
        explicit = next((bp for bp in breakpoints if last is not None and bp.boundary.index == last.index), None)
        if explicit is not None and explicit.ttl != ttl:
            raise InvalidRequest(
                f"cache_control: the top-level cache_control (ttl='{ttl}') applies to the last cacheable block, "
                f"{explicit.boundary.path}, which already has a cache_control with ttl='{explicit.ttl}'. "
                "Use the same ttl, or remove one of them."
            )
        if last is not None and explicit is None:
            breakpoints.append(Breakpoint(last, ttl, automatic=True))
    if len(breakpoints) > MAX_BREAKPOINTS:
        raise InvalidRequest(
            f"A maximum of {MAX_BREAKPOINTS} blocks with cache_control may be provided. Found {len(breakpoints)}."
        )
    seen_5m = False
    for bp in breakpoints:
        if bp.ttl == "5m":
            seen_5m = True
        elif seen_5m:
            raise InvalidRequest(
                f"{bp.boundary.path}.cache_control: a ttl='1h' cache_control block cannot come after a "
                "ttl='5m' one. Cache entries with a longer TTL must appear before shorter ones "
                "(in the order tools, system, messages)."
            )
    return PrefixPlan(tuple(boundaries), tuple(breakpoints), running)


# --------------------------------------------------------------------------- the cache


class PromptCache:
    """Cached prefixes keyed by (workspace, model, prefix hash), expiring on ``clock``.

    Thread-safe: the simulator may serve requests from several threads.
    """

    def __init__(self, clock: Clock, scope_of: Callable[[str], str] | None = None) -> None:
        self._clock = clock
        # The workspace a key belongs to (entries are shared by its keys); default: each key its own.
        self.scope_of: Callable[[str], str] = scope_of or (lambda key: key)
        self._entries: dict[tuple[str, str, str], CacheEntry] = {}
        self._lock = threading.Lock()

    def lookup_and_store(self, api_key: str, model: str, body: Mapping[str, Any], min_cache_tokens: int) -> CacheUsage:
        """Serve one request: read the longest cached prefix, write the rest up to the last breakpoint."""
        return self._run(api_key, model, body, min_cache_tokens, mutate=True)

    def peek(self, api_key: str, model: str, body: Mapping[str, Any], min_cache_tokens: int) -> CacheUsage:
        """The usage ``lookup_and_store`` would report now, without touching the cache."""
        return self._run(api_key, model, body, min_cache_tokens, mutate=False)

    def clear(self) -> None:
        """Forget every entry."""
        with self._lock:
            self._entries.clear()

    def entries(self, api_key: str | None = None, model: str | None = None) -> list[CacheEntry]:
        """Live entries (optionally for one key/model), oldest first."""
        now = self._clock.time()
        with self._lock:
            self._purge(now)
            found = [
                e
                for e in self._entries.values()
                if (api_key is None or e.api_key == self.scope_of(api_key)) and (model is None or e.model == model)
            ]
        return sorted(found, key=lambda e: (e.created_at, e.tokens))

    def _purge(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if e.expires_at <= now]:
            del self._entries[key]

    def _live(self, key: tuple[str, str, str], now: float) -> CacheEntry | None:
        entry = self._entries.get(key)
        return entry if entry is not None and entry.expires_at > now else None

    def _run(self, api_key: str, model: str, body: Mapping[str, Any], min_tokens: int, *, mutate: bool) -> CacheUsage:
        api_key = self.scope_of(api_key)  # entries belong to the key's workspace
        plan = plan_prefixes(body)
        total = plan.total_tokens
        if not plan.breakpoints:
            return CacheUsage(input_tokens=total)
        last = plan.breakpoints[-1].tokens
        if last < min_tokens:
            # Below the model's minimum the request is processed without caching, and no error.
            return CacheUsage(input_tokens=total)
        now = self._clock.time()
        with self._lock:
            read: CacheEntry | None = None
            for bp in plan.breakpoints:
                lo = max(0, bp.boundary.index - LOOKBACK_BLOCKS)
                for b in plan.boundaries[lo : bp.boundary.index + 1]:
                    hit = self._live((api_key, model, b.digest), now)
                    if hit is not None and (read is None or hit.tokens > read.tokens):
                        read = hit
            a = read.tokens if read is not None else 0
            creation = max(0, last - a)
            b_1h = max((bp.tokens for bp in plan.breakpoints if bp.ttl == "1h"), default=0)
            one_hour = max(0, min(b_1h, last) - a)
            usage = CacheUsage(
                cache_read_input_tokens=a,
                cache_creation_input_tokens=creation,
                ephemeral_5m_input_tokens=creation - one_hour,
                ephemeral_1h_input_tokens=one_hour,
                input_tokens=total - a - creation,
            )
            if mutate:
                if read is not None:
                    self._touch(read, now)
                for bp in plan.breakpoints:
                    if bp.tokens >= min_tokens:
                        self._write(api_key, model, bp, now)
        return usage

    def _touch(self, entry: CacheEntry, now: float) -> None:
        key = (entry.api_key, entry.model, entry.digest)
        expires = max(entry.expires_at, now + TTL_SECONDS[entry.ttl])
        self._entries[key] = CacheEntry(**{**entry.__dict__, "expires_at": expires})

    def _write(self, api_key: str, model: str, bp: Breakpoint, now: float) -> None:
        key = (api_key, model, bp.digest)
        old = self._live(key, now)
        expires = now + TTL_SECONDS[bp.ttl]
        if old is not None:
            # Re-marking a live prefix refreshes it; never shortens a 1h entry to 5m.
            ttl = "1h" if "1h" in (old.ttl, bp.ttl) else "5m"
            self._entries[key] = CacheEntry(
                api_key, model, bp.digest, bp.tokens, ttl, old.created_at, max(old.expires_at, expires)
            )
        else:
            self._entries[key] = CacheEntry(api_key, model, bp.digest, bp.tokens, bp.ttl, now, expires)


def cached_fraction(usage: CacheUsage) -> float:
    """Share of the request's input tokens read from the cache (0.0 to 1.0)."""
    total = usage.total_input_tokens
    return usage.cache_read_input_tokens / total if total else 0.0
