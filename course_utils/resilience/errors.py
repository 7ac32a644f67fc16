"""The base of what lesson 05's breakers, fallbacks and idempotency keys raise: ``except ResilienceError``.

It derives from :class:`course_utils.errors.CourseError`, the root of the course library's exceptions.
Under it: CircuitOpenError, AllLinksFailed, StreamInterrupted, IdempotencyError (KeyReused, InProgress).
"""

from __future__ import annotations

from ..errors import CourseError

__all__ = ["ResilienceError"]


class ResilienceError(CourseError):
    """Base of the exceptions raised on purpose by ``course_utils.resilience``."""
