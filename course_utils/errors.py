"""The root of the course library's exceptions, as ``httpx.HTTPError`` is of httpx's.

Every exception the library raises on purpose derives from :class:`CourseError`, through one base
per package (``ResilienceError``, ``CostError``, ...): ``except CourseError`` catches what the
course raised and lets through what it did not (a bug, an SDK error, ``KeyboardInterrupt``). A class
that also means a builtin condition keeps that builtin as a second base (``class X(CourseError,
ValueError)``), so existing ``except ValueError`` handlers still catch it.
"""

from __future__ import annotations

__all__ = ["CourseError"]


class CourseError(Exception):
    """Base of every exception the course library raises on purpose."""
