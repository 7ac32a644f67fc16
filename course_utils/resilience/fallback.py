"""A fallback chain: primary model, then a cheaper one, then a cached or degraded answer.

Rules the chain enforces:

- It moves to the next link only on a **retryable** failure (:func:`~.errors.is_retryable`: an
  overload, a 5xx, a timeout, a 429) or when the link's breaker is open. A 400 would fail on every
  model, and a spend limit too: those are raised at once.
- Only **while the deadline allows**: past ``deadline_s`` since the call started, the last error
  is raised instead of trying further links.
- It **records which link answered** (:class:`FallbackResult`), so cost and quality per link can
  be measured and a degraded answer is never mistaken for the primary's.
- **Streams**: a link may be switched only before any text has reached the user. Once a chunk has
  been yielded, a failure raises :class:`StreamInterrupted` (carrying the partial text and the
  link), because continuing with another model would splice two different answers into one
  without the user knowing. The caller decides: show an error, or restart visibly.
"""

from __future__ import annotations

import inspect
from dataclasses import dataclass, field
from typing import Any, AsyncIterator, Callable, Sequence

from ..clock import SYSTEM_CLOCK, Clock
from .breaker import BreakerBoard, CircuitOpenError
from ..retries import failure_kind, is_retryable
from .errors import ResilienceError

__all__ = ["Link", "FallbackChain", "FallbackResult", "AllLinksFailed", "StreamInterrupted", "stream_with_fallback"]


@dataclass(frozen=True)
class Link:
    """One link: ``name`` (e.g. the model id or ``"cached"``) and ``fn(*args, **kwargs)`` (sync or async)."""

    name: str
    fn: Callable[..., Any]
    breaker_key: Any = None
    """Key of the link's breaker in the chain's :class:`BreakerBoard` (default: ``name``)."""


@dataclass
class FallbackResult:
    """The answer, the link that gave it, and what the links before it raised."""

    value: Any
    link: str
    index: int
    errors: list[tuple[str, str]] = field(default_factory=list)
    """(link name, failure kind) for each link tried before the one that answered."""
    elapsed_s: float = 0.0

    @property
    def degraded(self) -> bool:
        """True when the primary did not answer."""
        return self.index > 0


class AllLinksFailed(ResilienceError):
    """No link answered (or the deadline ran out); ``errors`` lists each link's failure."""

    def __init__(self, errors: list[tuple[str, BaseException]]) -> None:
        kinds = ", ".join(f"{name}: {failure_kind(err)}" for name, err in errors) or "no link was tried"
        super().__init__(f"every link of the fallback chain failed ({kinds})")
        self.errors = errors


class StreamInterrupted(ResilienceError):
    """A stream failed after text reached the user: no silent switch to another link."""

    def __init__(self, link: str, partial: str, error: BaseException) -> None:
        super().__init__(
            f"stream from {link!r} failed after {len(partial)} characters were shown ({failure_kind(error)}); "
            "not switching links mid-answer"
        )
        self.link = link
        self.partial = partial
        self.error = error


class FallbackChain:
    """Try ``links`` in order (see the module docstring); ``call`` for sync links, ``acall`` for async ones."""

    def __init__(
        self,
        links: Sequence[Link],
        *,
        deadline_s: float | None = 30.0,
        retry_if: Callable[[BaseException], bool] = is_retryable,
        breakers: BreakerBoard | None = None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> None:
        if not links:
            raise ValueError("a fallback chain needs at least one link")
        self.links = list(links)
        self.deadline_s = deadline_s
        self.retry_if = retry_if
        self.breakers = breakers
        self.clock = clock
        self.answered: dict[str, int] = {link.name: 0 for link in self.links}
        self.failed = 0

    def _breaker(self, link: Link) -> Any:
        if self.breakers is None:
            return None
        return self.breakers.get(link.breaker_key if link.breaker_key is not None else link.name)

    def _out_of_time(self, started: float) -> bool:
        return self.deadline_s is not None and self.clock.monotonic() - started >= self.deadline_s

    def _give_up(self, errors: list[tuple[str, BaseException]]) -> AllLinksFailed:
        self.failed += 1
        return AllLinksFailed(errors)

    def _done(self, value: Any, index: int, errors: list[tuple[str, BaseException]], started: float) -> FallbackResult:
        link = self.links[index]
        self.answered[link.name] += 1
        return FallbackResult(
            value, link.name, index, [(n, failure_kind(e)) for n, e in errors], self.clock.monotonic() - started
        )

    async def acall(self, *args: Any, **kwargs: Any) -> FallbackResult:
        started = self.clock.monotonic()
        errors: list[tuple[str, BaseException]] = []
        for index, link in enumerate(self.links):
            if errors and self._out_of_time(started):
                break
            breaker = self._breaker(link)
            try:
                if breaker is not None:
                    value = await breaker.acall(_as_async(link.fn), *args, **kwargs)
                else:
                    value = await _as_async(link.fn)(*args, **kwargs)
            except CircuitOpenError as exc:
                errors.append((link.name, exc))
                continue
            except Exception as exc:
                if not self.retry_if(exc):
                    self.failed += 1
                    raise
                errors.append((link.name, exc))
                continue
            return self._done(value, index, errors, started)
        raise self._give_up(errors)

    def call(self, *args: Any, **kwargs: Any) -> FallbackResult:
        started = self.clock.monotonic()
        errors: list[tuple[str, BaseException]] = []
        for index, link in enumerate(self.links):
            if errors and self._out_of_time(started):
                break
            breaker = self._breaker(link)
            try:
                value = breaker.call(link.fn, *args, **kwargs) if breaker is not None else link.fn(*args, **kwargs)
            except CircuitOpenError as exc:
                errors.append((link.name, exc))
                continue
            except Exception as exc:
                if not self.retry_if(exc):
                    self.failed += 1
                    raise
                errors.append((link.name, exc))
                continue
            return self._done(value, index, errors, started)
        raise self._give_up(errors)

    def frame(self) -> Any:
        """Answers per link (``link``, ``answered``) plus the calls no link answered."""
        import pandas as pd

        rows = [{"link": name, "answered": n} for name, n in self.answered.items()]
        rows.append({"link": "(none: failed)", "answered": self.failed})
        return pd.DataFrame(rows, columns=["link", "answered"])


def _as_async(fn: Callable[..., Any]) -> Callable[..., Any]:
    async def run(*args: Any, **kwargs: Any) -> Any:
        value = fn(*args, **kwargs)
        if inspect.isawaitable(value):
            value = await value
        return value

    return run


async def stream_with_fallback(
    links: Sequence[tuple[str, Callable[[], AsyncIterator[str]]]],
    *,
    retry_if: Callable[[BaseException], bool] = is_retryable,
    on_link: Callable[[str], Any] | None = None,
) -> AsyncIterator[str]:
    """Yield text chunks from the first link that streams; switch links only before the first chunk.

    ``links`` are ``(name, open_stream)`` pairs where ``open_stream()`` returns an async iterator of
    text (e.g. ``stream.text_stream`` of ``client.messages.stream(...)``). ``on_link(name)`` is called
    when a link's first chunk arrives: that link now owns the answer. A retryable failure before it
    moves to the next link; any failure after it raises :class:`StreamInterrupted`.
    """
    errors: list[tuple[str, BaseException]] = []
    for name, open_stream in links:
        shown: list[str] = []
        try:
            async for chunk in open_stream():
                if not shown and on_link is not None:
                    on_link(name)
                shown.append(chunk)
                yield chunk
        except Exception as exc:
            if shown:
                raise StreamInterrupted(name, "".join(shown), exc) from exc
            if not retry_if(exc):
                raise
            errors.append((name, exc))
            continue
        return
    raise AllLinksFailed(errors)
