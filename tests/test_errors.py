"""One exception tree: every exception the library raises on purpose is a ``CourseError``, through one
base per package, and keeps the builtin base that existing ``except`` clauses rely on."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re
from decimal import Decimal

import pytest

import course_utils
from course_utils.clock import VirtualClock
from course_utils.cost import BudgetExceeded, CostError, SpendGuard
from course_utils.errors import CourseError
from course_utils.tenancy import (
    BudgetGuard,
    MemoryBudgetStore,
    Plan,
    TenancyError,
    TenantBudgetExceeded,
    TenantRegistry,
)

# package -> its base; a module directly in course_utils derives from CourseError itself.
BASES = {
    "architecture": "ArchitectureError",
    "batch": "BatchError",
    "checks": "CheckError",
    "concurrency": "ConcurrencyError",
    "context": "ContextError",
    "cost": "CostError",
    "mock_provider": "SimulatorError",
    "resilience": "ResilienceError",
    "retries": "RetriesError",
    "tenancy": "TenancyError",
}

# The builtin each class meant before the tree existed, which ``except`` clauses and tests still catch.
BUILTIN_BASES = {
    "course_utils.architecture.BusError": ValueError,
    "course_utils.architecture.StoreError": ValueError,
    "course_utils.architecture.VectorIndexError": ValueError,
    "course_utils.sqlite_store.SchemaTooNew": RuntimeError,
    "course_utils.batch.PollTimeout": TimeoutError,
    "course_utils.checks.CaseFailed": AssertionError,
    "course_utils.checks.forbid.ForbiddenCall": AssertionError,
    "course_utils.concurrency.ExceedsBucketCapacity": ValueError,
    "course_utils.context.ContextBudgetExceeded": ValueError,
    "course_utils.cost.BudgetExceeded": RuntimeError,
    "course_utils.tenancy.Unauthenticated": PermissionError,
    "course_utils.tenancy.ModelNotAllowed": PermissionError,
    "course_utils.tenancy.ConversationNotFound": KeyError,
    "course_utils.mock_provider.faults.InvalidFault": ValueError,
    "course_utils.mock_provider.skills.thinking.ShapeError": ValueError,
    "course_utils.models.UnknownModelError": KeyError,
    "course_utils.models.RetiredModelError": KeyError,
    "course_utils.pricing.UnknownPriceError": KeyError,
    "course_utils.provider.ProviderConfigError": RuntimeError,
    "course_utils.notebook_format.MarkerError": ValueError,
    "course_utils.redis_server.RedisUnavailable": RuntimeError,
}


def _modules():
    yield course_utils
    for info in pkgutil.walk_packages(course_utils.__path__, "course_utils."):
        if info.name.rsplit(".", 1)[-1] != "__main__":  # a command line, not a module to import
            yield importlib.import_module(info.name)


def public_exceptions() -> dict[str, type[BaseException]]:
    """Every exception class a ``course_utils`` module exports (``__all__``) or defines under a public name."""
    found: dict[str, type[BaseException]] = {}
    for module in _modules():
        names = set(getattr(module, "__all__", ())) | {
            name for name, v in vars(module).items() if inspect.isclass(v) and v.__module__ == module.__name__
        }
        for name in names:
            value = getattr(module, name)
            if (
                not name.startswith("_")
                and inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__.startswith("course_utils")
            ):
                found[f"{value.__module__}.{value.__qualname__}"] = value
    return found


def _exempt(cls: type[BaseException]) -> str | None:
    """Why ``cls`` may stay outside the tree, or None."""
    from course_utils.checks.runner import CheckAbandoned
    from course_utils.mock_provider.errors import APIError

    if issubclass(cls, APIError):
        return "what the simulator answers (the HTTP error envelope), not a failure of the library"
    if cls is CheckAbandoned:
        return "a BaseException so that student code's 'except Exception' cannot swallow it"
    return None


def _path(dotted: str):
    module, _, name = dotted.rpartition(".")
    return getattr(importlib.import_module(module), name)


def test_the_walk_sees_the_library_exceptions():
    """The tree test below could pass by finding nothing: it finds every package's exceptions."""
    found = public_exceptions()
    assert len(found) >= 40
    for dotted in BUILTIN_BASES:
        assert _path(dotted) in found.values(), dotted


def test_every_public_exception_is_a_course_error():
    outside = {
        name for name, cls in public_exceptions().items() if not issubclass(cls, CourseError) and not _exempt(cls)
    }
    assert outside == set()


def test_the_exemptions_are_what_they_claim():
    from course_utils.checks.runner import CheckAbandoned
    from course_utils.mock_provider.errors import APIError, RateLimited

    assert not issubclass(CheckAbandoned, Exception)
    assert _exempt(RateLimited) and RateLimited(message="slow down").body("req_1")["type"] == "error"
    assert _exempt(APIError) and _exempt(BudgetExceeded) is None


@pytest.mark.parametrize("package", sorted(BASES))
def test_each_package_exports_one_base_that_its_exceptions_share(package):
    module = importlib.import_module(f"course_utils.{package}")
    base = getattr(module, BASES[package])
    assert BASES[package] in module.__all__
    assert base.__bases__ == (CourseError,)
    members = {
        name: cls
        for name, cls in public_exceptions().items()
        if name.startswith(f"course_utils.{package}.") and cls is not base and not _exempt(cls)
    }
    assert members, f"course_utils.{package} raises no exception of its own: it needs no base"
    assert {name for name, cls in members.items() if not issubclass(cls, base)} == set()


def test_the_root_is_exported_by_the_library():
    assert course_utils.CourseError is CourseError and "CourseError" in course_utils.__all__


def test_modules_at_the_root_derive_from_course_error_directly():
    for name, cls in public_exceptions().items():
        if name.count(".") == 2 and cls is not CourseError:  # course_utils.<module>.<Class>
            assert CourseError in cls.__mro__ and not any(
                b.__module__.startswith("course_utils.") and b.__name__ in BASES.values() for b in cls.__mro__
            ), name


@pytest.mark.parametrize("dotted", sorted(BUILTIN_BASES))
def test_builtin_bases_are_kept(dotted):
    cls = _path(dotted)
    assert issubclass(cls, BUILTIN_BASES[dotted]) and issubclass(cls, CourseError)


def test_a_library_error_is_caught_by_its_old_builtin_and_by_course_error():
    from course_utils.models import get_model

    for handler in (KeyError, CourseError):
        with pytest.raises(handler):
            get_model("claude-no-such-model")


PLAN = Plan("small", 60, 10_000, 2_000, Decimal("1.00"), frozenset({"claude-haiku-5-5"}))


def test_except_budget_exceeded_catches_a_tenants_overrun():
    registry = TenantRegistry()
    registry.register("acme", PLAN)
    acme = registry.context("acme")
    guard = BudgetGuard(MemoryBudgetStore(), clock=VirtualClock(start=1_795_000_000.0))
    guard.settle(acme, guard.reserve(acme, Decimal("0.95")), Decimal("0.95"))
    guard.reserve(acme, Decimal("0.02"))  # in flight
    try:
        guard.reserve(acme, Decimal("0.10"))
    except BudgetExceeded as refused:  # lesson 06's exception, raised by lesson 07's guard
        assert isinstance(refused, TenantBudgetExceeded) and isinstance(refused, TenancyError)
        assert (refused.needed, refused.available) == (Decimal("0.10"), Decimal("0.03"))
        assert re.match(r"tenant 'acme' has a budget of \$1.00 for 2026-11: \$0.95\d* spent", str(refused))
    else:
        pytest.fail("a reservation past the tenant's budget was not refused")
    assert guard.status(acme).reserved == Decimal("0.02")  # the refusal held nothing


def test_both_guards_refusals_share_one_handler():
    refusals = []
    for guard_refuses in (
        lambda: SpendGuard(Decimal("0.01")).reserve(Decimal("0.02")),
        lambda: (_ for _ in ()).throw(
            TenantBudgetExceeded("t", "2026-11", Decimal(2), Decimal(0), Decimal(0), Decimal(1))
        ),
    ):
        with pytest.raises(CostError) as info:
            guard_refuses()
        refusals.append(info.value)
    assert all(isinstance(r, BudgetExceeded) for r in refusals)
    assert [(r.needed, r.available) for r in refusals] == [(Decimal("0.02"), Decimal("0.01")), (Decimal(2), Decimal(1))]
    # Lesson 06's message and two-argument constructor (exercise 6.5 raises it) are unchanged.
    assert str(refusals[0]) == "request may cost up to $0.02 but only $0.01 of the budget is left"
