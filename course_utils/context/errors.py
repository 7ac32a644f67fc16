"""The base of the exceptions lesson 01's context strategies raise: ``except ContextError`` catches them all.

It derives from :class:`course_utils.errors.CourseError`, the root of the course library's exceptions.
Under it: ContextBudgetExceeded.
"""

from __future__ import annotations

from ..errors import CourseError

__all__ = ["ContextError"]


class ContextError(CourseError):
    """Base of the exceptions raised on purpose by ``course_utils.context``."""
