"""Field checks shared by every part of a request, each raising the API's 400 naming the field path."""

from __future__ import annotations

from typing import Any, Mapping

from ..errors import InvalidRequest

__all__ = ["no_extra", "require", "check_type", "type_name", "cache_control", "enum"]


def no_extra(obj: Mapping[str, Any], known: frozenset[str], path: str) -> None:
    """Refuse the first field (in sorted order, so the message is stable) that ``known`` lacks."""
    extra = sorted((k for k in obj if k not in known), key=str)
    if extra:
        where = f"{path}.{extra[0]}" if path else str(extra[0])
        raise InvalidRequest(f"{where}: Extra inputs are not permitted")


def type_name(v: Any) -> str:
    return {dict: "object", list: "array", str: "string", bool: "boolean", type(None): "null"}.get(
        type(v), "integer" if isinstance(v, int) else "number" if isinstance(v, float) else type(v).__name__
    )


def require(body: Mapping[str, Any], key: str, where: str = "") -> Any:
    if key not in body:
        raise InvalidRequest(f"{where}{key}: Field required")
    return body[key]


def check_type(value: Any, expected: type | tuple[type, ...], path: str, name: str) -> None:
    ok = isinstance(value, expected) and not (isinstance(value, bool) and bool not in _as_tuple(expected))
    if not ok:
        raise InvalidRequest(f"{path}: Input should be a valid {name}, got {type_name(value)}")


def _as_tuple(t: type | tuple[type, ...]) -> tuple[type, ...]:
    return t if isinstance(t, tuple) else (t,)


def cache_control(value: Any, path: str) -> dict[str, Any] | None:
    if value is None:
        return None
    check_type(value, dict, path, "object")
    no_extra(value, frozenset({"type", "ttl"}), path)
    if value.get("type") != "ephemeral":
        raise InvalidRequest(f"{path}.type: Input should be 'ephemeral'")
    ttl = value.get("ttl", "5m")
    if ttl not in ("5m", "1h"):
        raise InvalidRequest(f"{path}.ttl: Input should be '5m' or '1h'")
    return {"type": "ephemeral", "ttl": ttl}


def enum(value: Any, allowed: tuple[str, ...], path: str) -> None:
    if value is not None and (not isinstance(value, str) or value not in allowed):
        raise InvalidRequest(f"{path}: Input should be " + " or ".join(f"'{a}'" for a in allowed))
