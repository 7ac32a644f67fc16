"""The base of the exceptions lesson 04's batch jobs raise: ``except BatchError`` catches them all.

It derives from :class:`course_utils.errors.CourseError`, the root of the course library's exceptions.
Under it: PollTimeout.
"""

from __future__ import annotations

from ..errors import CourseError

__all__ = ["BatchError"]


class BatchError(CourseError):
    """Base of the exceptions raised on purpose by ``course_utils.batch``."""
