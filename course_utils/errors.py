"""The root of the course library's exceptions, as ``httpx.HTTPError`` is of httpx's.

Every exception the library raises on purpose derives from :class:`CourseError`, through one base
per package (``ResilienceError``, ``CostError``, ...): ``except CourseError`` catches what the
course raised and lets through what it did not (a bug, an SDK error, ``KeyboardInterrupt``). A class
that also means a builtin condition keeps that builtin as a second base (``class X(CourseError,
ValueError)``), so existing ``except ValueError`` handlers still catch it.

The tree (builtin second bases in brackets; each package base is exported by its package)::

    CourseError
    ├── ProviderConfigError [RuntimeError]          course_utils.provider
    ├── UnknownModelError [KeyError]                course_utils.models
    │   └── RetiredModelError
    ├── UnknownPriceError [KeyError]                course_utils.pricing
    ├── MarkerError [ValueError]                    course_utils.notebook_format
    ├── RedisUnavailable [RuntimeError]             course_utils.redis_server
    ├── SchemaTooNew [RuntimeError]                 course_utils.sqlite_store (the stores' migrations)
    ├── SimulatorError                              course_utils.mock_provider
    │   ├── InvalidFault [ValueError], ShapeError [ValueError]
    │   └── DroppedConnection
    ├── RetriesError                                course_utils.retries (the foundation)
    │   └── ThrottledLocally
    ├── ContextError                                lesson 01, course_utils.context
    │   └── ContextBudgetExceeded [ValueError]
    ├── ConcurrencyError                            lesson 03, course_utils.concurrency
    │   └── ExceedsBucketCapacity [ValueError]
    ├── BatchError                                  lesson 04, course_utils.batch
    │   └── PollTimeout [TimeoutError]
    ├── ResilienceError                             lesson 05, course_utils.resilience
    │   ├── CircuitOpenError, AllLinksFailed, StreamInterrupted
    │   └── IdempotencyError
    │       └── KeyReused, InProgress
    ├── CostError                                   lesson 06, course_utils.cost
    │   └── BudgetExceeded [RuntimeError]
    │       └── TenantBudgetExceeded (also a TenancyError: every budget guard's refusal)
    ├── TenancyError                                lesson 07, course_utils.tenancy
    │   ├── Unauthenticated [PermissionError], ModelNotAllowed [PermissionError]
    │   ├── ConversationNotFound [KeyError], TenantBusy
    │   └── TenantBudgetExceeded
    ├── ArchitectureError                           lesson 08, course_utils.architecture
    │   ├── BusError [ValueError], StoreError [ValueError], VectorIndexError [ValueError]
    │   └── WorkerCrash, TenantRateLimited
    └── CheckError                                  course_utils.checks
        ├── CaseFailed [AssertionError]
        │   └── ForbiddenCall
        └── CheckBug

Outside the tree, on purpose: the simulator's ``APIError`` family (``mock_provider.errors``) is
what the simulated *server answers* (the HTTP error envelope, which the SDK turns into
``anthropic.APIStatusError``), not a failure of the library; ``checks.runner.CheckAbandoned`` is a
``BaseException`` so that student code's ``except Exception`` cannot swallow it; and private
control-flow exceptions (``_StartFailed``, the checks' ``_Crash``) never leave their module.
``tests/test_errors.py`` walks every module and keeps the tree so.
"""

from __future__ import annotations

__all__ = ["CourseError"]


class CourseError(Exception):
    """Base of every exception the course library raises on purpose."""
