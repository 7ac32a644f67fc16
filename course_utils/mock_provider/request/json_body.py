"""Decoding a request body: a JSON object, or the API's 400 for anything else."""

from __future__ import annotations

import json
from typing import Any

from ..errors import InvalidRequest

__all__ = ["parse_json_body"]


def parse_json_body(raw: bytes) -> dict[str, Any]:
    """Decode a JSON object body, or raise the API's 400 for malformed JSON."""
    if not raw.strip():
        raise InvalidRequest("Request body is empty; expected a JSON object.")
    try:
        body = json.loads(raw, parse_constant=_reject_constant)
    except (UnicodeDecodeError, json.JSONDecodeError, ValueError) as exc:
        raise InvalidRequest(f"There was an issue with your request body: invalid JSON: {exc}") from None
    except RecursionError:
        raise InvalidRequest("There was an issue with your request body: JSON nested too deeply.") from None
    if not isinstance(body, dict):
        raise InvalidRequest(f"Request body must be a JSON object, got {type(body).__name__}.")
    try:
        _check_strings(body, "", 0)
    except RecursionError:
        raise InvalidRequest("There was an issue with your request body: JSON nested too deeply.") from None
    return body


def _reject_constant(name: str) -> Any:
    # NaN and Infinity are not JSON; Python's parser accepts them unless told otherwise.
    raise ValueError(f"{name} is not valid JSON")


_MAX_DEPTH = 64


def _check_strings(value: Any, path: str, depth: int) -> None:
    """Reject what JSON can encode but text cannot hold (lone surrogates), and absurd nesting."""
    if depth > _MAX_DEPTH:
        raise InvalidRequest(f"{path or 'body'}: JSON nested more than {_MAX_DEPTH} levels deep")
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError:
            raise InvalidRequest(f"{path or 'body'}: string is not valid UTF-8 (lone surrogate)") from None
    elif isinstance(value, dict):
        for k, v in value.items():
            _check_strings(k, path, depth + 1)
            _check_strings(v, f"{path}.{k}" if path else str(k), depth + 1)
    elif isinstance(value, list):
        for i, v in enumerate(value):
            _check_strings(v, f"{path}.{i}", depth + 1)
