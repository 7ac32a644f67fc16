"""The base of the exceptions lesson 03's limiters and pools raise: ``except ConcurrencyError`` catches them all.

It derives from :class:`course_utils.errors.CourseError`, the root of the course library's exceptions.
Under it: ExceedsBucketCapacity.
"""

from __future__ import annotations

from ..errors import CourseError

__all__ = ["ConcurrencyError"]


class ConcurrencyError(CourseError):
    """Base of the exceptions raised on purpose by ``course_utils.concurrency``."""
