"""Turn an exception from student code into one paragraph a student can act on.

A bare traceback through the SDK's internals says little to someone learning the pattern; the
paragraph says what the error means for *this* code and what usually fixes it, and
:func:`student_frame` points at the last line of the student's own code that was running.
"""

from __future__ import annotations

import linecache

import re
import sysconfig
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import looptime

from .runner import VIRTUAL_LIMIT

__all__ = ["Explanation", "explain", "student_frame", "is_signature_error"]

_PACKAGE_DIR = str(Path(__file__).resolve().parents[1])  # course_utils/
_LIBRARY_DIRS = tuple(
    {
        str(Path(p).resolve())
        for key in ("stdlib", "platstdlib", "purelib", "platlib")
        if (p := sysconfig.get_paths().get(key))
    }
)
_SIGNATURE = re.compile(
    r"^(?P<name>[\w.<>]+)\(\) (takes|missing|got an unexpected keyword|got multiple values|takes no arguments)"
)


@dataclass
class Explanation:
    """The verdict for an exception: its outcome, a paragraph, and where in the student's code."""

    outcome: str  # "not_attempted" | "error" | "timeout"
    text: str
    where: str | None = None


def _is_library(filename: str) -> bool:
    try:
        path = str(Path(filename).resolve())
    except (OSError, ValueError):
        return False
    return path.startswith(_PACKAGE_DIR) or path.startswith(_LIBRARY_DIRS)


def _display_name(filename: str) -> str:
    # Notebook cells compile to temp files (ipykernel_*/NNN.py) or <ipython-input-...>; never print
    # a machine path, which would leak into committed outputs.
    if "ipykernel_" in filename or filename.startswith("<ipython-input"):
        return "your notebook cell"
    return Path(filename).name


def student_frame(exc: BaseException) -> str | None:
    """``line N in fn: <code>`` for the innermost frame outside the course library and Python's own."""
    frames = traceback.extract_tb(exc.__traceback__)
    for frame in reversed(frames):
        if frame.filename and not _is_library(frame.filename):
            code = (frame.line or linecache.getline(frame.filename, frame.lineno or 0)).strip()
            where = f"{_display_name(frame.filename)}, line {frame.lineno}, in {frame.name}"
            return f"{where}: {code}" if code else where
    return None


def is_signature_error(exc: BaseException, answers: Sequence[Any]) -> bool:
    """Was this ``TypeError`` raised by calling one of the student's functions with the check's
    arguments (rather than by something inside it)?"""
    if not isinstance(exc, TypeError):
        return False
    m = _SIGNATURE.match(str(exc))
    if not m:
        return False
    names = {getattr(a, "__qualname__", None) for a in answers} | {getattr(a, "__name__", None) for a in answers}
    return m.group("name") in names or m.group("name").rsplit(".", 1)[-1] in names


def _api_message(exc: Any) -> str:
    body = getattr(exc, "body", None)
    if isinstance(body, dict):
        err = body.get("error", body)
        if isinstance(err, dict) and err.get("message"):
            return str(err["message"])
    return str(getattr(exc, "message", exc))


def _sdk_paragraph(exc: BaseException) -> str | None:
    try:
        import anthropic
    except ImportError:  # pragma: no cover - the course always has the SDK
        return None
    if not isinstance(exc, anthropic.AnthropicError):
        return None
    name = type(exc).__name__
    if isinstance(exc, anthropic.APITimeoutError):
        return (
            f"The request timed out before the API answered ({name}). The client's timeout was shorter "
            "than the response took: long answers need a longer timeout= or streaming, and a retry "
            "policy decides whether to try again."
        )
    if isinstance(exc, anthropic.APIConnectionError):
        return (
            f"Your code could not reach the API ({name}): nothing answered at the client's base_url. "
            "Use the client the exercise passes in (or course_utils.client()) rather than building one "
            "with a hard-coded address."
        )
    if isinstance(exc, anthropic.APIStatusError):
        status, message = exc.status_code, _api_message(exc)
        if isinstance(exc, anthropic.RateLimitError):
            return (
                f"The API refused a request with 429 rate_limit_error ({message}). Your code sent more "
                "requests or tokens per minute than the key allows. Production code limits its "
                "concurrency and retries after the retry-after delay with exponential backoff "
                "(lessons 03 and 05)."
            )
        if isinstance(exc, anthropic.AuthenticationError):
            return (
                f"The API rejected the API key (401 authentication_error: {message}). Use the client the "
                "exercise passes in; for the real API set ANTHROPIC_API_KEY before starting JupyterLab."
            )
        if isinstance(exc, anthropic.NotFoundError):
            return (
                f"The API answered 404 not_found_error ({message}). This is almost always a model id "
                "that does not exist: copy the id exactly from the lesson (e.g. claude-haiku-4-5)."
            )
        if isinstance(exc, anthropic.BadRequestError):
            return (
                f"The API rejected the request as invalid (400 invalid_request_error): {message} "
                "The message names the field at fault; compare your messages.create arguments with "
                "the example earlier in the lesson."
            )
        if status >= 500:
            return (
                f"The API answered {status} ({name}: {message}). That is a server-side, transient "
                "failure rather than a bug in your request: retry with backoff, and fall back or "
                "give up after a few attempts (lesson 05)."
            )
        return f"The API answered HTTP {status} ({name}): {message}"
    return f"The Anthropic SDK raised {name}: {exc}"


def explain(
    exc: BaseException, *, exercise: str, answers: Sequence[Any] = (), signature: str | None = None
) -> Explanation:
    """A one-paragraph explanation of ``exc`` raised while checking ``exercise``."""
    where = student_frame(exc)
    fn_names = [getattr(a, "__name__", None) for a in answers if callable(a)]
    fn = f"`{fn_names[0]}`" if fn_names and fn_names[0] else "your function"
    if isinstance(exc, NotImplementedError):
        return Explanation(
            "not_attempted",
            f"{fn[0].upper() + fn[1:]} still raises NotImplementedError"
            + (f" ({exc})" if str(exc) else "")
            + ". Replace the `raise NotImplementedError(...)` line with your code, run that cell, "
            "then run this check again.",
            None,  # the stub's own line: pointing at it adds nothing
        )
    if is_signature_error(exc, answers):
        wanted = f" as `{signature}`" if signature else ""
        return Explanation(
            "error",
            f"The check could not call {fn}{wanted}: {exc}. Keep the parameters from the exercise's "
            "starter code (names, order and defaults); the checks call it exactly that way.",
            None,
        )
    if isinstance(exc, looptime.LoopTimeoutError):  # the check's virtual time limit, not the student's own
        return Explanation(
            "timeout",
            f"Took too long: your code was still waiting after {VIRTUAL_LIMIT / 60:g} minutes of (simulated) "
            "time. Look for a sleep far longer than the API ever asks for, a poll with no deadline, or a "
            "retry loop with no maximum.",
            None,
        )
    paragraph = _sdk_paragraph(exc)
    if paragraph is None:
        if isinstance(exc, TimeoutError):  # asyncio.TimeoutError is TimeoutError since 3.11
            paragraph = (
                "Your code raised TimeoutError: something inside it waited longer than its own limit "
                "(asyncio.wait_for, asyncio.timeout or a timeout= argument). Either the limit is too "
                "tight for the API's latency or the thing awaited never finishes (a task nobody "
                "awaits, a queue nobody fills, a lock never released)."
            )
        elif isinstance(exc, AssertionError):
            detail = f" ({exc})" if str(exc) else ""
            paragraph = (
                f"An assert in your code failed{detail}: your function checked something it assumed "
                "and it was false. Print the values the assert tests just before it."
            )
        elif isinstance(exc, RecursionError):
            paragraph = "Your code recursed without end (RecursionError): check the base case."
        elif isinstance(exc, TypeError):
            paragraph = (
                f"Your code raised TypeError: {exc}. A value has a different type than the code "
                "expects; check what each call returns (e.g. message.content is a list of blocks)."
            )
        else:
            detail = f": {exc}" if str(exc) else ""
            paragraph = f"Your code raised {type(exc).__name__}{detail}."
    return Explanation("error", paragraph, where)
