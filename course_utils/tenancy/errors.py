"""The base of the exceptions lesson 07's multi-tenant gateway raise: ``except TenancyError`` catches them all.

It derives from :class:`course_utils.errors.CourseError`, the root of the course library's exceptions.
Under it: Unauthenticated, ModelNotAllowed, ConversationNotFound, TenantBusy, TenantBudgetExceeded.
"""

from __future__ import annotations

from ..errors import CourseError

__all__ = ["TenancyError"]


class TenancyError(CourseError):
    """Base of the exceptions raised on purpose by ``course_utils.tenancy``."""
