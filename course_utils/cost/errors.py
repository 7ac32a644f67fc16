"""The base of the exceptions lesson 06's cost tools raise: ``except CostError`` catches them all.

It derives from :class:`course_utils.errors.CourseError`, the root of the course library's exceptions.
Under it: BudgetExceeded.
"""

from __future__ import annotations

from ..errors import CourseError

__all__ = ["CostError"]


class CostError(CourseError):
    """Base of the exceptions raised on purpose by ``course_utils.cost``."""
