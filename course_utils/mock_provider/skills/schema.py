"""Structured outputs: a JSON value that validates against the request's JSON schema.

``output_config.format = {"type": "json_schema", "schema": {...}}`` makes the API answer with JSON
that follows the schema ("Structured outputs guarantee schema-compliant responses through
constrained decoding", https://platform.claude.com/docs/en/build-with-claude/structured-outputs).
The simulator builds the value from the schema, filling each property from the content the way
the structured skill fills named keys (sentiment via the classifier, summaries from the first
sentence, numbers and dates found in the text, ...), then coerces it into the schema's
constraints (types, ``enum``/``const``, ``required``, ``minimum``/``maximum``, ``minLength``/
``maxLength``, ``minItems``/``maxItems``, ``format``, ``anyOf``/``oneOf``/``allOf``, ``$ref`` into
``$defs``/``definitions``) and checks the result with ``jsonschema``. If a schema uses something
this builder cannot satisfy, the value falls back to the smallest instance it can make valid.
"""

from __future__ import annotations

import re
from typing import Any, Callable

__all__ = ["instance_for", "is_valid"]

_MAX_DEPTH = 8
_HARD_DEPTH = 24
"""Below _MAX_DEPTH only required properties are built; below _HARD_DEPTH nothing (a recursive
schema whose required properties recurse, ``{"properties": {"a": {"$ref": "#"}}, "required": ["a"]}``,
has no finite instance: it gets ``null`` there and fails validation, not the server)."""


def is_valid(value: Any, schema: dict[str, Any]) -> bool:
    """Whether ``value`` validates against ``schema`` (formats checked where jsonschema can)."""
    # Imported here, not at the top: jsonschema's format checkers take ~3.6 s to import, which every
    # lesson's import cell paid although only structured-output requests need them.
    import jsonschema

    try:
        validator = jsonschema.validators.validator_for(schema)
        validator(schema, format_checker=validator.FORMAT_CHECKER).validate(value)
        return True
    except (jsonschema.ValidationError, jsonschema.SchemaError):
        return False
    except Exception:  # noqa: BLE001 - an exotic schema must never crash a reply
        return False


def instance_for(schema: dict[str, Any], fill: Callable[[str, Any], Any]) -> Any:
    """A value valid against ``schema``; ``fill(key, hint)`` proposes content for a property.

    ``hint`` is a small example of the expected type (``""``, ``0``, ``0.0``, ``True``, ``[]``,
    ``[0]``), a tuple of the allowed values for an ``enum``, or ``None``; whatever ``fill``
    returns is coerced into the property's schema.
    """
    builder = _Builder(schema, fill)
    value = builder.build(schema, key="answer", depth=0)
    if is_valid(value, schema):
        return value
    minimal = _Builder(schema, lambda key, hint: None).build(schema, key="answer", depth=0)
    return minimal


class _Builder:
    def __init__(self, root: dict[str, Any], fill: Callable[[str, Any], Any]) -> None:
        self.root = root
        self.fill = fill

    def resolve(self, schema: Any) -> dict[str, Any]:
        seen = 0
        while isinstance(schema, dict) and "$ref" in schema and seen < 20:
            ref = schema["$ref"]
            target: Any = None
            if isinstance(ref, str) and ref.startswith("#"):
                target = self.root
                for part in ref.lstrip("#").strip("/").split("/"):
                    if not part:
                        continue
                    part = part.replace("~1", "/").replace("~0", "~")
                    target = target.get(part) if isinstance(target, dict) else None
            merged = {k: v for k, v in schema.items() if k != "$ref"}
            schema = {**(target if isinstance(target, dict) else {}), **merged}
            seen += 1
        return schema if isinstance(schema, dict) else {}

    def build(self, schema: Any, *, key: str, depth: int) -> Any:
        if depth > _HARD_DEPTH:
            return None
        s = self.resolve(schema)
        if "const" in s:
            return s["const"]
        if "enum" in s and isinstance(s["enum"], list) and s["enum"]:
            proposed = self.fill(key, tuple(s["enum"]))
            return proposed if proposed in s["enum"] else _closest(proposed, s["enum"])
        for combo in ("anyOf", "oneOf"):
            options = s.get(combo)
            if isinstance(options, list) and options:
                base = {k: v for k, v in s.items() if k != combo}
                for option in options:
                    candidate = self.build({**base, **self.resolve(option)}, key=key, depth=depth)
                    if self._valid_here(candidate, {**base, **self.resolve(option)}):
                        return candidate
                return self.build({**base, **self.resolve(options[0])}, key=key, depth=depth)
        if isinstance(s.get("allOf"), list):
            merged: dict[str, Any] = {k: v for k, v in s.items() if k != "allOf"}
            for part in s["allOf"]:
                part = self.resolve(part)
                for k, v in part.items():
                    if k == "properties" and isinstance(v, dict):
                        merged["properties"] = {**merged.get("properties", {}), **v}
                    elif k == "required" and isinstance(v, list):
                        merged["required"] = list(dict.fromkeys([*merged.get("required", []), *v]))
                    else:
                        merged.setdefault(k, v)
            return self.build(merged, key=key, depth=depth)
        kind = s.get("type")
        if isinstance(kind, list):
            kinds = [k for k in kind if k != "null"] or ["null"]
            kind = kinds[0]
        if kind is None:
            kind = "object" if "properties" in s else "array" if "items" in s else "string"
        if kind == "object":
            return self._object(s, key, depth)
        if kind == "array":
            return self._array(s, key, depth)
        if kind == "string":
            return self._string(s, key)
        if kind == "integer":
            return int(self._number(s, key, integer=True))
        if kind == "number":
            return self._number(s, key, integer=False)
        if kind == "boolean":
            v = self.fill(key, True)
            return v if isinstance(v, bool) else False
        if kind == "null":
            return None
        return self._string(s, key)

    def _valid_here(self, value: Any, schema: dict[str, Any]) -> bool:
        # Validate a sub-instance with the root's definitions available for $ref.
        defs = {k: self.root[k] for k in ("$defs", "definitions") if k in self.root}
        return is_valid(value, {**defs, **schema})

    def _object(self, s: dict[str, Any], key: str, depth: int) -> dict[str, Any]:
        props = s.get("properties") if isinstance(s.get("properties"), dict) else {}
        required = [r for r in s.get("required", []) if isinstance(r, str)]
        out: dict[str, Any] = {}
        if depth >= _MAX_DEPTH:
            names = required
        else:
            # Structured outputs answer every declared property; required ones at least.
            names = list(dict.fromkeys([*props, *required]))
        for name in names:
            sub = props.get(name, {})
            out[name] = self.build(sub, key=name, depth=depth + 1)
        max_props = s.get("maxProperties")
        if isinstance(max_props, int) and len(out) > max_props:
            keep = list(dict.fromkeys([*required, *out]))[: max(max_props, len(required))]
            out = {k: out[k] for k in keep}
        return out

    def _array(self, s: dict[str, Any], key: str, depth: int) -> list[Any]:
        items = s.get("items")
        lo = s.get("minItems", 0) if isinstance(s.get("minItems"), int) else 0
        hi = s.get("maxItems") if isinstance(s.get("maxItems"), int) else None
        prefix = s.get("prefixItems") if isinstance(s.get("prefixItems"), list) else []
        out: list[Any] = [self.build(p, key=key, depth=depth + 1) for p in prefix]
        item_schema = self.resolve(items) if isinstance(items, dict) else {}
        if depth < _MAX_DEPTH and isinstance(items, dict):
            kind = item_schema.get("type")
            simple = kind in ("string", "integer", "number") and not any(
                k in item_schema for k in ("enum", "const", "anyOf", "oneOf", "$ref", "pattern", "format")
            )
            if simple:
                proposed = self.fill(key, [0] if kind in ("integer", "number") else [])
                if isinstance(proposed, list):
                    for v in proposed:
                        out.append(self._coerce_scalar(v, item_schema, key))
            if len(out) <= len(prefix):
                out.append(self.build(items, key=_singular(key), depth=depth + 1))
        while len(out) < lo:
            out.append(self.build(item_schema, key=_singular(key), depth=depth + 1))
        if hi is not None:
            out = out[: max(hi, 0)]
        if s.get("uniqueItems"):
            uniq: list[Any] = []
            for v in out:
                if v not in uniq:
                    uniq.append(v)
            out = uniq
        return out

    def _coerce_scalar(self, value: Any, s: dict[str, Any], key: str) -> Any:
        kind = s.get("type")
        if kind == "string":
            return self._fit_string(str(value), s)
        if kind in ("integer", "number"):
            try:
                n = float(value)
            except (TypeError, ValueError):
                n = 0.0
            return int(self._clamp(n, s, kind == "integer")) if kind == "integer" else self._clamp(n, s, False)
        return value

    def _string(self, s: dict[str, Any], key: str) -> str:
        fmt = s.get("format")
        if fmt == "date":
            v = self.fill(key if "date" in key else f"{key}_date", "")
            return v if isinstance(v, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", v) else "2026-01-01"
        if fmt == "date-time":
            return "2026-01-01T00:00:00Z"
        if fmt == "time":
            return "00:00:00Z"
        if fmt == "email":
            v = self.fill("email", "")
            return v if isinstance(v, str) and re.fullmatch(r"[^@\s]+@[^@\s]+\.[^@\s]+", v) else "user@example.com"
        if fmt in ("uri", "url"):
            return "https://example.com/"
        if fmt == "uuid":
            return "00000000-0000-4000-8000-000000000000"
        if fmt in ("ipv4",):
            return "192.0.2.1"
        if fmt in ("ipv6",):
            return "2001:db8::1"
        if fmt == "hostname":
            return "example.com"
        v = self.fill(key, "")
        if v is None:
            v = ""
        if not isinstance(v, str):
            v = str(v).lower() if isinstance(v, bool) else str(v)
        if isinstance(s.get("pattern"), str):
            try:
                if not re.search(s["pattern"], v):
                    return _pattern_example(s["pattern"])
            except re.error:
                pass
        return self._fit_string(v, s)

    def _fit_string(self, v: str, s: dict[str, Any]) -> str:
        lo = s.get("minLength") if isinstance(s.get("minLength"), int) else 0
        hi = s.get("maxLength") if isinstance(s.get("maxLength"), int) else None
        if hi is not None and len(v) > hi:
            v = v[:hi]
        if len(v) < lo:
            v = v + "x" * (lo - len(v))
        return v

    def _number(self, s: dict[str, Any], key: str, *, integer: bool) -> float:
        v = self.fill(key, 0 if integer else 0.0)
        try:
            n = float(v) if not isinstance(v, bool) and v is not None else 0.0
        except (TypeError, ValueError):
            n = 0.0
        return self._clamp(n, s, integer)

    @staticmethod
    def _clamp(n: float, s: dict[str, Any], integer: bool) -> float:
        import math

        if integer:
            n = float(round(n))
        lo, hi = s.get("minimum"), s.get("maximum")
        xlo, xhi = s.get("exclusiveMinimum"), s.get("exclusiveMaximum")
        step = 1.0 if integer else 1e-6
        if isinstance(lo, (int, float)) and n < lo:
            n = math.ceil(lo) if integer else float(lo)
        if isinstance(xlo, (int, float)) and not isinstance(xlo, bool) and n <= xlo:
            n = math.floor(xlo) + 1 if integer else xlo + step
        if isinstance(hi, (int, float)) and n > hi:
            n = math.floor(hi) if integer else float(hi)
        if isinstance(xhi, (int, float)) and not isinstance(xhi, bool) and n >= xhi:
            n = math.ceil(xhi) - 1 if integer else xhi - step
        mult = s.get("multipleOf")
        if isinstance(mult, (int, float)) and mult > 0:
            n = round(n / mult) * mult
            if isinstance(lo, (int, float)) and n < lo:
                n += mult
            if isinstance(hi, (int, float)) and n > hi:
                n -= mult
        return int(n) if integer else float(n)


def _closest(value: Any, options: list[Any]) -> Any:
    """The enum option that best matches a proposed value (case-insensitive text match)."""
    if isinstance(value, str):
        low = value.lower()
        for opt in options:
            if isinstance(opt, str) and opt.lower() == low:
                return opt
        for opt in options:
            if isinstance(opt, str) and (opt.lower() in low or low in opt.lower()) and low:
                return opt
    return options[0]


def _singular(key: str) -> str:
    return key[:-1] if key.endswith("s") and len(key) > 3 else key


def _pattern_example(pattern: str) -> str:
    """A string matching a simple pattern (anchored classes and literals); '' if that does not match."""
    body = pattern.removeprefix("^").removesuffix("$")
    out = []
    for m in re.finditer(
        r"\\d(?:\{(\d+)(?:,\d*)?\})?|\[A-Z\](?:\{(\d+)(?:,\d*)?\})?|\[a-z\](?:\{(\d+)(?:,\d*)?\})?|\\?(.)", body
    ):
        if m.group(0).startswith("\\d"):
            out.append("0" * int(m.group(1) or 1))
        elif m.group(0).startswith("[A-Z]"):
            out.append("A" * int(m.group(2) or 1))
        elif m.group(0).startswith("[a-z]"):
            out.append("a" * int(m.group(3) or 1))
        else:
            out.append(m.group(4))
    candidate = "".join(out)
    try:
        return candidate if re.search(pattern, candidate) else ""
    except re.error:
        return ""
