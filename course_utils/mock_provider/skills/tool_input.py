"""Building a tool's ``input`` from the user's text: schema-valid, with values taken from the words.

Required properties always, optional ones only when the text supplies a value. Values come from
the user's words where possible (a place after "in", the numbers in the text, an enum value that is
mentioned, an e-mail, a URL, a date, a code) and otherwise are type-correct defaults.
"""

from __future__ import annotations

import re
from typing import Any

from .text import content_words, stem, stems, words

__all__ = ["build_input", "name_words"]


def name_words(name: str) -> list[str]:
    """A name's words: get_weather / getWeather / get-weather all become ["get", "weather"]."""
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


_MISSING = object()


_PLACE_KEYS = ("city", "location", "place", "destination", "origin", "country", "region", "town", "where", "address")
_TEXT_KEYS = (
    "query",
    "q",
    "search",
    "question",
    "text",
    "prompt",
    "message",
    "content",
    "input",
    "keywords",
    "term",
    "topic",
    "body",
)
_NUMBER = re.compile(r"(?<![\w.])-?\d+(?:\.\d+)?(?![\w.]*\d)")
_PLACE = re.compile(r"\b(?:in|at|for|to|from|near|of)\s+((?:[A-Z][\w'.-]*)(?:\s+[A-Z][\w'.-]*){0,2})")
_PROPER = re.compile(r"(?<![.!?]\s)(?<!^)\b([A-Z][a-z][\w'-]*(?:\s+[A-Z][a-z][\w'-]*)*)")
_EMAIL = re.compile(r"[\w.+-]+@[\w-]+\.[\w.-]+")
_URL = re.compile(r"https?://\S+")
_DATE = re.compile(r"\b\d{4}-\d{2}-\d{2}\b")
_CODE = re.compile(r"\b(?=[A-Z0-9-]*\d)[A-Z0-9][A-Z0-9-]{2,}\b")


def _schema_type(schema: dict[str, Any]) -> str | None:
    t = schema.get("type")
    if isinstance(t, list):
        # ["string", "null"]: pick the first concrete type.
        t = next((x for x in t if x != "null"), t[0] if t else None)
    if isinstance(t, str):
        return t
    if isinstance(schema.get("properties"), dict):
        return "object"
    if "items" in schema:
        return "array"
    return None


def _clamp_number(value: float, schema: dict[str, Any], integer: bool) -> float | int:
    lo, hi = schema.get("minimum"), schema.get("maximum")
    if isinstance(lo, (int, float)) and not isinstance(lo, bool) and value < lo:
        value = lo
    if isinstance(hi, (int, float)) and not isinstance(hi, bool) and value > hi:
        value = hi
    ex_lo = schema.get("exclusiveMinimum")
    if isinstance(ex_lo, (int, float)) and not isinstance(ex_lo, bool) and value <= ex_lo:
        value = ex_lo + 1
    return int(round(value)) if integer else float(value)


class _Filler:
    """Builds values for one request, remembering which numbers of the text are already used."""

    def __init__(self, text: str) -> None:
        self.text = text
        self.lower = text.lower()
        self.numbers = [m for m in _NUMBER.finditer(text)]
        self.used_numbers: set[int] = set()

    def value(self, schema: Any, key: str, required: bool) -> Any:
        """A value for property ``key``; ``_MISSING`` when optional and the text supplies none."""
        if not isinstance(schema, dict):
            return "" if required else _MISSING
        for combo in ("anyOf", "oneOf", "allOf"):
            options = schema.get(combo)
            if isinstance(options, list) and options and isinstance(options[0], dict):
                merged = {**{k: v for k, v in schema.items() if k != combo}, **options[0]}
                return self.value(merged, key, required)
        if "const" in schema:
            return schema["const"]
        enum = schema.get("enum")
        if isinstance(enum, list) and enum:
            return self._enum(enum, required)
        kind = _schema_type(schema)
        if kind == "object":
            return self.obj(schema, required)
        if kind == "array":
            return self._array(schema, key, required)
        if kind in ("number", "integer"):
            return self._number(schema, key, kind == "integer", required)
        if kind == "boolean":
            return self._boolean(schema, key, required)
        if kind == "null":
            return None if required else _MISSING
        if kind == "string" or kind is None:
            return self._string(schema, key, required)
        return schema.get("default", "") if required else _MISSING

    def obj(self, schema: dict[str, Any], required: bool = True) -> Any:
        props = schema.get("properties")
        props = props if isinstance(props, dict) else {}
        req = schema.get("required")
        req_names = [r for r in req if isinstance(r, str)] if isinstance(req, list) else []
        out: dict[str, Any] = {}
        for name, sub in props.items():
            v = self.value(sub, str(name), name in req_names)
            if v is not _MISSING:
                out[str(name)] = v
        for name in req_names:
            if name not in out:
                # Required but undeclared: any JSON value validates, a string reads best.
                out[name] = self._string({}, name, True)
        if not out and not required:
            return _MISSING
        return out

    def _enum(self, enum: list[Any], required: bool) -> Any:
        for option in enum:
            if isinstance(option, str) and re.search(rf"\b{re.escape(option.lower())}\b", self.lower):
                return option
        return enum[0] if required else _MISSING

    def _array(self, schema: dict[str, Any], key: str, required: bool) -> Any:
        items = schema.get("items") if isinstance(schema.get("items"), dict) else {}
        lo = schema.get("minItems") if isinstance(schema.get("minItems"), int) else 0
        hi = schema.get("maxItems") if isinstance(schema.get("maxItems"), int) else None
        enum = items.get("enum") if isinstance(items.get("enum"), list) else None
        if enum:
            found = [o for o in enum if isinstance(o, str) and re.search(rf"\b{re.escape(o.lower())}\b", self.lower)]
            out = found or ([enum[0]] if (required or lo) else [])
        else:
            first = self.value(items, key.rstrip("s"), True) if (required or lo) else _MISSING
            out = [] if first is _MISSING else [first]
        while len(out) < lo:
            out.append(out[-1] if out else self.value(items, key, True))
        if hi is not None and hi >= 0:
            out = out[:hi]
        if not out and not required:
            return _MISSING
        return out

    def _number(self, schema: dict[str, Any], key: str, integer: bool, required: bool) -> Any:
        key_words = {stem(w) for w in _key_words(key)}
        chosen = None
        # Prefer a number right next to the property's own word ("3 days", "limit 5").
        for i, m in enumerate(self.numbers):
            before = words(self.text[max(0, m.start() - 20) : m.start()])[-1:]
            after = words(self.text[m.end() : m.end() + 20])[:1]
            if i not in self.used_numbers and key_words & {stem(w) for w in before + after}:
                chosen = i
                break
        if chosen is None:
            chosen = next((i for i in range(len(self.numbers)) if i not in self.used_numbers), None)
        if chosen is not None:
            self.used_numbers.add(chosen)
            return _clamp_number(float(self.numbers[chosen].group()), schema, integer)
        if not required:
            return _MISSING
        default = schema.get("default")
        if isinstance(default, (int, float)) and not isinstance(default, bool):
            return _clamp_number(float(default), schema, integer)
        return _clamp_number(1.0, schema, integer)

    def _boolean(self, schema: dict[str, Any], key: str, required: bool) -> Any:
        key_stems = {stem(w) for w in _key_words(key) if w not in ("is", "has", "include", "enable", "use", "with")}
        mentioned = bool(key_stems & stems(self.text))
        if mentioned:
            return not re.search(r"\b(no|not|without|don't|dont|never)\b", self.lower)
        if not required:
            return _MISSING
        default = schema.get("default")
        return default if isinstance(default, bool) else False

    def _string(self, schema: dict[str, Any], key: str, required: bool) -> Any:
        value = self._string_from_text(schema, key)
        if value is None:
            if not required:
                return _MISSING
            default = schema.get("default")
            value = default if isinstance(default, str) else self._string_default(schema, key)
        lo = schema.get("minLength") if isinstance(schema.get("minLength"), int) else 0
        hi = schema.get("maxLength") if isinstance(schema.get("maxLength"), int) else None
        if len(value) < lo:
            value = value + "x" * (lo - len(value))
        if hi is not None and hi >= lo:
            value = value[:hi]
        return value

    def _string_from_text(self, schema: dict[str, Any], key: str) -> str | None:
        k = key.lower()
        fmt = schema.get("format")
        if fmt == "email" or "email" in k:
            m = _EMAIL.search(self.text)
            return m.group() if m else None
        if fmt in ("uri", "url") or "url" in k or "link" in k:
            m = _URL.search(self.text)
            return m.group().rstrip(".,)") if m else None
        if fmt in ("date", "date-time") or "date" in k:
            m = _DATE.search(self.text)
            return m.group() if m else None
        if any(p in k for p in _PLACE_KEYS):
            m = _PLACE.search(self.text)
            if m:
                return m.group(1).rstrip(".,;:!?")
            proper = _PROPER.search(self.text)
            return proper.group(1) if proper else None
        if k == "id" or k.endswith(("_id", "id", "number", "code", "sku")):
            m = _CODE.search(self.text)
            return m.group() if m else None
        if "name" in k:
            m = re.search(r"\b(?:named|called|name is|for)\s+([A-Z][\w'-]*(?:\s+[A-Z][\w'-]*)?)", self.text)
            if m:
                return m.group(1)
            proper = _PROPER.search(self.text)
            return proper.group(1) if proper else None
        if any(k == t or k.endswith("_" + t) or k.startswith(t + "_") for t in _TEXT_KEYS):
            return self._topic_text()
        return None

    def _topic_text(self) -> str:
        text = " ".join(self.text.split())
        # The user's words minus a trailing question mark read as a search query.
        return text.rstrip("?.! ")[:200] or "information"

    def _string_default(self, schema: dict[str, Any], key: str) -> str:
        fmt = schema.get("format")
        if fmt == "email":
            return "user@example.com"
        if fmt in ("uri", "url"):
            return "https://example.com"
        if fmt == "date":
            return "2025-01-01"
        if fmt == "date-time":
            return "2025-01-01T00:00:00Z"
        k = key.lower()
        if "unit" in k:
            return "celsius"
        if "lang" in k:
            return "en"
        if "timezone" in k or k == "tz":
            return "UTC"
        topic = content_words(self.text)
        return " ".join(topic[:4]) if topic else "unknown"


def _key_words(key: str) -> list[str]:
    return name_words(key)


def build_input(schema: Any, text: str) -> dict[str, Any]:
    """A tool ``input`` for ``schema`` (a JSON schema object) filled from the user's ``text``."""
    if not isinstance(schema, dict):
        return {}
    value = _Filler(text).obj(schema, required=True)
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------------------------
