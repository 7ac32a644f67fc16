"""The base of the exceptions lesson 08's support desk raise: ``except ArchitectureError`` catches them all.

It derives from :class:`course_utils.errors.CourseError`, the root of the course library's exceptions.
Under it: BusError, StoreError, VectorIndexError, WorkerCrash, TenantRateLimited.
"""

from __future__ import annotations

from ..errors import CourseError

__all__ = ["ArchitectureError"]


class ArchitectureError(CourseError):
    """Base of the exceptions raised on purpose by ``course_utils.architecture``."""
