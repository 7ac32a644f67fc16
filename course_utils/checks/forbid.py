"""``forbid``: while a student's answer runs, the reference implementation refuses to help.

Some exercises are to write what the library already does (price a request, count its tokens, trim
a conversation); an answer that just calls the library must not pass. Usage in a check::

    with forbid(answer, {"pricing.cost": pricing.cost}, task="work out the cost"):
        got = call(answer, usage, model)

While the block runs, each forbidden function is swapped for a stand-in that raises
:class:`ForbiddenCall` (a :class:`~.framework.CaseFailed`) by every route an answer can reach it:

* an attribute of any ``course_utils`` module holding it (``pricing.cost``, a package re-export,
  the module globals the library's own classes call);
* a name in the answer's own namespace, under any alias (``from course_utils.pricing import cost
  as c`` in the notebook), also in the namespaces of helpers the answer reaches;
* a default argument (``def f(u, m, _c=cost)``), a closure cell, a ``functools.partial`` target,
  and an attribute of the answer's classes or of a callable object passed as the answer;
* the reference itself passed as the answer (``is_retryable = resilience.is_retryable``), a
  ``functools.wraps`` wrapper of it, and for a class: a subclass of it, an instance of it, and a
  call into any of its methods (a thin wrapper around an instance made before the check);
* for ``endpoints``, a request to that API path through any Anthropic SDK client, the notebook's
  included (``client.messages.count_tokens``, ``with_raw_response``, the beta resource).

A refusal the answer catches and swallows still fails the check: the context manager raises
:class:`ForbiddenCall` on exit when any call was refused. Everything is put back in ``finally``,
also when the answer raises. The simulator (``course_utils.mock_provider``) runs in the same
process and is never patched: its modules are skipped, and a stand-in called while a simulator
frame is on the stack (e.g. the ledger pricing a request) hands the call to the original. So does
a stand-in called directly by a lesson's check module (``course_utils.checks.lessonNN``), which
may compute the expected answer with the reference itself. A forbidden function that is a method
of a library class (``DeskStore.history_within``) is swapped in that class too.

An exercise declares its reference once (``Exercise(..., reference={...}, task=...)``) and the
engine runs every case under ``forbid``.

Not covered: an answer that copies the library's source, or reaches the simulator's internals
directly. Those are not "calling the library" in the sense of the exercises.
"""

from __future__ import annotations

import functools
import os
import re
import sys
import sysconfig
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from types import CellType, FunctionType, MethodType, ModuleType
from typing import Any, Callable, Iterator, Mapping, Sequence
from urllib.parse import urlsplit

from .framework import CaseFailed

__all__ = ["forbid", "reachable", "ForbiddenCall", "ApiEndpoint", "COUNT_TOKENS"]

_PACKAGE = "course_utils"
_SIMULATOR = "course_utils.mock_provider"
_INSTALLED = tuple({os.path.realpath(sysconfig.get_paths()[k]) for k in ("stdlib", "platstdlib", "purelib", "platlib")})


class ForbiddenCall(CaseFailed):
    """The answer called a function (or API endpoint) the exercise asks the student to write themselves."""


@dataclass(frozen=True)
class ApiEndpoint:
    """An Anthropic API path an answer must not request, e.g. ``/v1/messages/count_tokens``."""

    name: str
    path: str


COUNT_TOKENS = ApiEndpoint("the API's count_tokens (client.messages.count_tokens)", "/v1/messages/count_tokens")
"""The token-counting endpoint: the answer to any exercise that is to count tokens."""


@contextmanager
def forbid(
    answer: Any,
    functions: Mapping[str, Callable[..., Any]],
    *,
    task: str,
    endpoints: Sequence[ApiEndpoint] = (),
    hint: str | None = None,
) -> Iterator[list[str]]:
    """Refuse ``functions`` (display name -> object) and ``endpoints`` while the block runs.

    ``task`` completes "the exercise is to ... without the library"; ``hint`` may use ``{name}``
    for what was called. Yields the list of refused names (in call order). Raises
    :class:`ForbiddenCall` when the block ends and any call was refused, whatever the answer did
    with the refusal.
    """
    called: list[str] = []
    how: dict[str, str] = {}

    def refusal(name: str) -> ForbiddenCall:
        advice = hint or "Use only the building blocks the exercise names; {name} already does the exercise for you."
        return ForbiddenCall(
            f"write it yourself: the exercise is to {task} without the library, but "
            + how.get(name, f"your function called {name}"),
            hint=advice.format(name=name),
        )

    def refuse(name: str) -> None:
        called.append(name)
        raise refusal(name)

    stand_ins = {id(obj): (obj, _stand_in(name, obj, refuse)) for name, obj in functions.items()}
    names = {id(obj): name for name, obj in functions.items()}
    with ExitStack() as undo:
        try:
            for name, reference in functions.items():
                # The reference itself under the exercise's name (identity, an alias), a subclass of
                # it, or an instance of it: refused before the answer runs.
                relation = _relation_to(answer, reference)
                if relation is not None:
                    how[name] = f"your answer {relation} {name}"
                    refuse(name)
            found = reachable(answer)  # once: both uses below walk the same graph
            for target in _partial_targets(answer, found):
                # A partial's function cannot be swapped (``func`` is read-only): one that wraps a
                # forbidden function is refused before the answer runs.
                if _replacement(target, stand_ins) is not None:
                    refuse(names[id(target)])
            _swap_references(found, stand_ins, undo)
            for name, reference in functions.items():
                if isinstance(reference, type):
                    _refuse_methods(name, reference, refuse, undo)
            for endpoint in endpoints:
                _refuse_endpoint(endpoint, refuse, undo)
            yield called
        except Exception:
            if called:  # the answer caught the refusal, then failed otherwise: the refusal is the verdict
                raise refusal(called[0]) from None
            raise
    if called:  # the answer swallowed the refusal and carried on
        raise refusal(called[0])


def _stand_in(name: str, original: Callable[..., Any], refuse: Callable[[str], None]) -> Callable[..., Any]:
    """A function that refuses, except on behalf of the simulator (which must keep working)."""

    def stand_in(*args: Any, **kwargs: Any) -> Any:
        if _simulator_on_stack() or _called_by_a_check():
            return original(*args, **kwargs)
        refuse(name)

    # Look like the original in a traceback, but give no ``__wrapped__`` route back to it.
    stand_in.__name__ = getattr(original, "__name__", name)
    stand_in.__qualname__ = getattr(original, "__qualname__", name)
    stand_in.__doc__ = f"Refused during this check: {name}."
    return stand_in


def _answers(answer: Any) -> list[Any]:
    """The objects a check received: ``check(id, a, b)`` passes a tuple of them."""
    return list(answer) if isinstance(answer, tuple) else [answer]


def _unwrapped(obj: Any) -> list[Any]:
    """``obj`` and what it wraps: a bound method's function and instance, ``__wrapped__`` chains."""
    out, todo = [], [obj]
    while todo and len(out) < 50:
        item = todo.pop()
        if any(item is seen for seen in out):
            continue
        out.append(item)
        if isinstance(item, MethodType):
            todo += [item.__func__, item.__self__]
        elif isinstance(item, (staticmethod, classmethod)):
            todo.append(item.__func__)
        wrapped = getattr(item, "__wrapped__", None) if isinstance(item, (FunctionType, type)) else None
        if wrapped is not None:
            todo.append(wrapped)
    return out


def _relation_to(answer: Any, reference: Any) -> str | None:
    """How ``answer`` is ``reference``: itself (under any name, or wrapped by ``functools.wraps``),
    a subclass or an instance of it (also as a bound method's instance); else None."""
    # Only what the check was given: a notebook's other classes share the answer's namespace, and a
    # helper class that merely exists there is not the answer. Routes further in call the reference
    # (its functions and methods refuse).
    for item in (c for a in _answers(answer) for c in _unwrapped(a)):
        if item is reference:
            return "is"
        if isinstance(reference, type):
            try:
                if isinstance(item, type) and issubclass(item, reference):
                    return "subclasses"
                if not isinstance(item, type) and isinstance(item, reference):
                    return "is an instance of"
            except TypeError:  # a Protocol that is not runtime-checkable: only identity applies
                continue
    return None


def _refuse_methods(name: str, cls: type, refuse: Callable[[str], None], undo: ExitStack) -> None:
    """Every method of the reference class refuses (a thin wrapper holding an instance made earlier
    calls into it); dunder methods other than ``__init__``/``__call__`` stay, so the check can print."""
    for key, value in list(vars(cls).items()):
        if key.startswith("__") and key not in ("__init__", "__call__"):
            continue
        if isinstance(value, FunctionType):
            new: Any = _stand_in(f"{name}.{key}", value, refuse)
        elif isinstance(value, property) and value.fget is not None:
            new = property(_stand_in(f"{name}.{key}", value.fget, refuse), value.fset, value.fdel, value.__doc__)
        elif isinstance(value, (staticmethod, classmethod)) and isinstance(value.__func__, FunctionType):
            new = type(value)(_stand_in(f"{name}.{key}", value.__func__, refuse))
        else:
            continue
        setattr(cls, key, new)
        undo.callback(setattr, cls, key, value)


_CHECKS = "course_utils.checks.lesson"


def _called_by_a_check() -> bool:
    """The caller is a lesson's check module itself (it computes the expected answer with the reference).

    Only the direct caller counts: the student's code, and the library code it calls, are never a check.
    """
    return str(sys._getframe(2).f_globals.get("__name__", "")).startswith(_CHECKS)


def _simulator_on_stack() -> bool:
    frame = sys._getframe(2)
    while frame is not None:
        if str(frame.f_globals.get("__name__", "")).startswith(_SIMULATOR):
            return True
        frame = frame.f_back
    return False


# ---------------------------------------------------------------------------------------------
# Swapping every reference to a forbidden function
# ---------------------------------------------------------------------------------------------
StandIns = Mapping[int, "tuple[Any, Callable[..., Any]]"]


def _replacement(value: Any, stand_ins: StandIns) -> Callable[..., Any] | None:
    hit = stand_ins.get(id(value))
    return hit[1] if hit is not None and hit[0] is value else None


def _swap_references(found: Reachable, stand_ins: StandIns, undo: ExitStack) -> None:
    """Swap every reference to a forbidden function: in the library, and in ``found`` (what the answer reaches)."""
    functions, classes, objects = found
    library = _library_namespaces()  # read once: a check enters this guard for every call it makes
    namespaces = {id(ns): ns for ns in library}
    for fn in functions:
        if not _is_simulator(fn.__globals__):
            namespaces.setdefault(id(fn.__globals__), fn.__globals__)
    for ns in namespaces.values():
        _swap_in_dict(ns, stand_ins, undo)
    for cls in _library_classes(library):  # a forbidden method of a library class (``DeskStore.history_within``)
        _swap_in_class(cls, stand_ins, undo)
    for obj in objects:
        _swap_in_dict(vars(obj), stand_ins, undo)
    for cls in classes:
        _swap_in_class(cls, stand_ins, undo)
    for fn in functions:
        _swap_in_function(fn, stand_ins, undo)


def _holding(mapping: Mapping[str, Any], stand_ins: StandIns) -> list[tuple[str, Any, Callable[..., Any]]]:
    """``(key, original, stand-in)`` for each value of ``mapping`` that is a forbidden function.

    The scan is one comprehension over ids (a set lookup per value): the library's namespaces hold
    thousands of values and a check may enter the guard thousands of times.
    """
    hits = [(key, value) for key, value in list(mapping.items()) if id(value) in stand_ins]
    return [(key, value, new) for key, value in hits if (new := _replacement(value, stand_ins)) is not None]


def _swap_in_dict(ns: dict[str, Any], stand_ins: StandIns, undo: ExitStack) -> None:
    for key, value, new in _holding(ns, stand_ins):
        ns[key] = new
        undo.callback(ns.__setitem__, key, value)


def _swap_in_class(cls: type, stand_ins: StandIns, undo: ExitStack) -> None:
    for key, value, new in _holding(vars(cls), stand_ins):
        setattr(cls, key, new)
        undo.callback(setattr, cls, key, value)


def _swap_in_function(fn: FunctionType, stand_ins: StandIns, undo: ExitStack) -> None:
    """Default arguments and closure cells of ``fn``."""
    defaults = fn.__defaults__ or ()
    if any(_replacement(v, stand_ins) for v in defaults):
        fn.__defaults__ = tuple(_replacement(v, stand_ins) or v for v in defaults)
        undo.callback(setattr, fn, "__defaults__", defaults)
    kwdefaults = fn.__kwdefaults__ or {}
    if any(_replacement(v, stand_ins) for v in kwdefaults.values()):
        fn.__kwdefaults__ = {k: _replacement(v, stand_ins) or v for k, v in kwdefaults.items()}
        undo.callback(setattr, fn, "__kwdefaults__", kwdefaults)
    for cell in fn.__closure__ or ():
        value = _cell_contents(cell)
        if (new := _replacement(value, stand_ins)) is not None:
            cell.cell_contents = new
            undo.callback(setattr, cell, "cell_contents", value)


def _cell_contents(cell: CellType) -> Any:
    try:
        return cell.cell_contents
    except ValueError:  # an empty cell (a name assigned later in the enclosing function)
        return None


Reachable = tuple[list[FunctionType], list[type], list[Any]]
"""What :func:`reachable` returns: the answer's functions, classes and objects holding callables."""


def reachable(answer: Any) -> Reachable:
    """The student's code the answer can run: functions, classes, and objects holding callables.

    Followed: bound methods (and their ``self``), ``functools.partial``, default arguments, closure
    cells, a callable object's attributes, and the functions and classes defined in the namespace
    of every function found (helpers called by name). The library's internals are reached through
    module namespaces instead; nothing of the simulator is ever collected.
    """
    functions: dict[int, FunctionType] = {}
    classes: dict[int, type] = {}
    objects: dict[int, Any] = {}
    namespaces: set[int] = set()  # the module globals already scanned (the answer's helpers share one)
    todo: list[Any] = _answers(answer)
    while todo:
        obj = todo.pop()
        if isinstance(obj, MethodType):
            todo += [obj.__func__, obj.__self__]
        elif isinstance(obj, (staticmethod, classmethod)):
            todo.append(obj.__func__)
        elif isinstance(obj, functools.partial):
            todo += [obj.func, *obj.args, *obj.keywords.values()]
        elif isinstance(obj, FunctionType):
            if id(obj) in functions or _is_simulator(obj.__globals__):
                continue
            functions[id(obj)] = obj
            todo += list(obj.__defaults__ or ()) + list((obj.__kwdefaults__ or {}).values())
            todo += [_cell_contents(c) for c in obj.__closure__ or ()]
            if id(obj.__globals__) not in namespaces:
                namespaces.add(id(obj.__globals__))
                todo += [v for v in list(obj.__globals__.values()) if _defined_in(v, obj.__globals__)]
        elif isinstance(obj, type):
            if id(obj) in classes or str(getattr(obj, "__module__", "")).startswith(_PACKAGE):
                continue
            classes[id(obj)] = obj
            todo += list(vars(obj).values())
        elif _is_student_object(obj) and id(obj) not in objects:
            objects[id(obj)] = obj
            todo += [type(obj), *vars(obj).values()]
    return list(functions.values()), list(classes.values()), list(objects.values())


def _partial_targets(answer: Any, found: Reachable) -> list[Any]:
    """The functions wrapped by every ``functools.partial`` the answer can reach: itself, a default, a
    closure cell, a callable object's attribute, or a global its code reads (only those: a notebook's
    unrelated partials are not the answer's)."""
    functions, _, objects = found
    candidates: list[Any] = [*_answers(answer), *objects]
    for fn in functions:
        if str(fn.__globals__.get("__name__", "")).startswith(_PACKAGE):
            continue  # the library's own functions: not the answer's routes
        candidates += list(fn.__defaults__ or ()) + list((fn.__kwdefaults__ or {}).values())
        candidates += [_cell_contents(c) for c in fn.__closure__ or ()]
        candidates += [fn.__globals__.get(name) for name in _global_names(fn.__code__)]  # globals it reads
    for obj in objects:
        candidates += list(vars(obj).values())
    out, seen = [], set()
    while candidates:
        obj = candidates.pop()
        if isinstance(obj, functools.partial) and id(obj) not in seen:
            seen.add(id(obj))
            out.append(obj.func)
            candidates.append(obj.func)
    return out


def _global_names(code: Any) -> set[str]:
    """The global (and attribute) names a code object and its nested functions refer to."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _global_names(const)
    return names


def _is_student_object(obj: Any) -> bool:
    """An instance of a class the student wrote (a callable object, a pricer passed as a default)."""
    if isinstance(obj, (ModuleType, type)) or not isinstance(getattr(obj, "__dict__", None), dict):
        return False
    module = str(getattr(type(obj), "__module__", ""))
    if module == "builtins" or module.startswith(_PACKAGE):
        return False
    path = getattr(sys.modules.get(module), "__file__", None)
    # A notebook's classes live in ``__main__`` (no file, or the kernel's); installed code is not the student's.
    return not path or not os.path.realpath(path).startswith(_INSTALLED)


def _defined_in(value: Any, namespace: dict[str, Any]) -> bool:
    if isinstance(value, FunctionType):
        return value.__globals__ is namespace
    return isinstance(value, type) and getattr(value, "__module__", None) == namespace.get("__name__")


def _is_simulator(namespace: dict[str, Any]) -> bool:
    return str(namespace.get("__name__", "")).startswith(_SIMULATOR)


def _library_classes(namespaces: list[dict[str, Any]]) -> list[type]:
    """The classes defined in the library ``namespaces`` (from :func:`_library_namespaces`)."""
    out: dict[int, type] = {}
    for ns in namespaces:
        name = ns.get("__name__")
        out.update(
            (id(v), v) for v in list(ns.values()) if isinstance(v, type) and getattr(v, "__module__", None) == name
        )
    return list(out.values())


# ``course_utils`` and its submodules, except ``course_utils.mock_provider`` and its submodules.
_LIBRARY_MODULE = re.compile(rf"{_PACKAGE}(?:$|\.(?!{_SIMULATOR.rpartition('.')[2]}(?:$|\.)))").match


def _library_namespaces() -> list[dict[str, Any]]:
    """The globals of every loaded ``course_utils`` module except the simulator's."""
    modules = sys.modules
    # The names are filtered in C (``filter`` with a compiled pattern): sys.modules holds thousands
    # of entries once pandas and matplotlib are loaded.
    return [
        vars(module) for name in filter(_LIBRARY_MODULE, list(modules)) if (module := modules.get(name)) is not None
    ]


# ---------------------------------------------------------------------------------------------
# Refusing an API endpoint
# ---------------------------------------------------------------------------------------------
def _refuse_endpoint(endpoint: ApiEndpoint, refuse: Callable[[str], None], undo: ExitStack) -> None:
    """Wrap the SDK's ``request`` on both client bases, the one method every resource call goes through.

    Patched on the classes (looked up at call time), so clients and ``with_raw_response`` wrappers
    made before the check are covered too.
    """
    from anthropic._base_client import AsyncAPIClient, SyncAPIClient

    def hits(options: Any) -> bool:
        path = urlsplit(str(getattr(options, "url", ""))).path.rstrip("/")
        return path.endswith(endpoint.path)

    sync_request = SyncAPIClient.request
    async_request = AsyncAPIClient.request

    def request(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        if hits(options):
            refuse(endpoint.name)
        return sync_request(self, cast_to, options, *args, **kwargs)

    async def arequest(self: Any, cast_to: Any, options: Any, *args: Any, **kwargs: Any) -> Any:
        if hits(options):
            refuse(endpoint.name)
        return await async_request(self, cast_to, options, *args, **kwargs)

    SyncAPIClient.request = request  # type: ignore[method-assign]
    undo.callback(setattr, SyncAPIClient, "request", sync_request)
    AsyncAPIClient.request = arequest  # type: ignore[method-assign]
    undo.callback(setattr, AsyncAPIClient, "request", async_request)
