"""Tool use: pick a tool (honouring ``tool_choice``), build a schema-valid ``input`` from the text,
and, once the user sends ``tool_result`` blocks, answer with a final text that uses them.

Tool choice follows the API: ``{"type": "tool", "name": X}`` always calls X, ``any`` calls the best
match, ``auto`` (or absent) calls a tool only when its name/description overlaps the request
enough, and ``none`` never calls. After tool results the skill always answers in text (the brief
for the lessons' agent loops), so a loop that forgets to switch ``tool_choice`` still terminates.

Inputs are built from the JSON schema: required properties always, optional ones only when the
text supplies a value. Values come from the user's words where possible (a place after "in", the
numbers in the text, an enum value that is mentioned) and otherwise are type-correct defaults.
"""

from __future__ import annotations

import re
from typing import Any

from ..request import MessagesRequest, text_of
from .base import Reply, SkillContext, TextOut, ToolUseOut
from .text import content_words, stem, stems, words

__all__ = ["ToolUseSkill", "tool_score", "pick_tool", "build_input", "AUTO_THRESHOLD"]

AUTO_THRESHOLD = 2.0
"""Minimum match score for ``auto`` to call a tool: one name word, or two description words."""

_MISSING = object()


def _name_words(name: str) -> list[str]:
    # get_weather / getWeather / get-weather all become ["get", "weather"].
    spaced = re.sub(r"([a-z])([A-Z])", r"\1 \2", name)
    return [w for w in re.split(r"[^A-Za-z0-9]+", spaced.lower()) if w]


_VERBS = {"get", "set", "fetch", "find", "lookup", "look", "run", "do", "make", "create", "list", "call", "use", "tool"}


def tool_score(tool: dict[str, Any], text: str) -> float:
    """How well a tool matches ``text``: 2 per shared name word, 1 per shared description word."""
    user = stems(text)
    name = {stem(w) for w in _name_words(str(tool.get("name", ""))) if w not in _VERBS}
    desc_text = tool.get("description")
    desc = stems(desc_text) if isinstance(desc_text, str) else set()
    # Generic verbs ('get', 'find') match almost any request; they should not decide.
    desc -= {stem(v) for v in _VERBS} | name
    return 2.0 * len(user & name) + 1.0 * len(user & desc)


def pick_tool(req: MessagesRequest, text: str) -> dict[str, Any] | None:
    """The tool to call for ``text`` under the request's ``tool_choice`` (None: answer in text)."""
    tools = [t for t in req.tools if isinstance(t, dict) and isinstance(t.get("name"), str)]
    if not tools:
        return None
    choice = req.tool_choice or {"type": "auto"}
    kind = choice.get("type", "auto")
    if kind == "none":
        return None
    if kind == "tool":
        return next((t for t in tools if t["name"] == choice.get("name")), None)
    scored = [(tool_score(t, text), -i, t) for i, t in enumerate(tools)]
    best_score, _, best = max(scored, key=lambda x: (x[0], x[1]))
    if kind == "any":
        return best
    return best if best_score >= AUTO_THRESHOLD else None


# ---------------------------------------------------------------------------------------------
# Building an input that validates against the tool's schema.

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
    return _name_words(key)


def build_input(schema: Any, text: str) -> dict[str, Any]:
    """A tool ``input`` for ``schema`` (a JSON schema object) filled from the user's ``text``."""
    if not isinstance(schema, dict):
        return {}
    value = _Filler(text).obj(schema, required=True)
    return value if isinstance(value, dict) else {}


# ---------------------------------------------------------------------------------------------


def _tool_results(req: MessagesRequest) -> list[tuple[str, str, bool]]:
    """(tool name, result text, is_error) for tool_result blocks in the last user turn."""
    if not req.messages:
        return []
    msgs = list(req.messages)
    i = len(msgs) - 1
    if msgs[i].role == "assistant":
        i -= 1
    if i < 0 or msgs[i].role != "user":
        return []
    names: dict[str, str] = {}
    if i > 0:
        for b in msgs[i - 1].content:
            if b.get("type") == "tool_use":
                names[str(b.get("id"))] = str(b.get("name"))
    out = []
    for b in msgs[i].content:
        if b.get("type") == "tool_result":
            c = b.get("content", "")
            text = (
                c
                if isinstance(c, str)
                else text_of([x for x in c if isinstance(x, dict)])
                if isinstance(c, list)
                else ""
            )
            out.append((names.get(str(b.get("tool_use_id")), "the tool"), text.strip(), bool(b.get("is_error"))))
    return out


def _question_before_tools(req: MessagesRequest) -> str:
    """The user's request the tools were called for (the last user text that is not only results)."""
    for m in reversed(req.messages):
        if m.role == "user":
            plain = " ".join(str(b.get("text", "")) for b in m.content if b.get("type") == "text").strip()
            if plain:
                return plain
    return ""


_PREFACES = (
    "I'll look that up.",
    "Let me check that for you.",
    "I'll use a tool to find out.",
    "Let me look into that.",
)


class ToolUseSkill:
    """Calls a tool when the request's tools and ``tool_choice`` say so; answers from tool results."""

    name = "tool_use"

    def respond(self, ctx: SkillContext) -> Reply | None:
        """A tool_use block (maybe after a short preface), a final answer from results, or None."""
        req = ctx.request
        if not req.tools:
            return None
        results = _tool_results(req)
        if results:
            return Reply(blocks=(TextOut(self._final_answer(results)),), skill=self.name)
        text = _question_before_tools(req)
        tool = pick_tool(req, text)
        if tool is None:
            return None
        call = ToolUseOut(name=tool["name"], input=build_input(tool.get("input_schema"), text))
        kind = (req.tool_choice or {}).get("type", "auto")
        if kind in ("any", "tool"):
            # A forced tool choice makes the API start the turn with the tool call: no preface.
            return Reply(blocks=(call,), skill=self.name)
        return Reply(blocks=(TextOut(ctx.rng.choice(_PREFACES)), call), skill=self.name)

    @staticmethod
    def _final_answer(results: list[tuple[str, str, bool]]) -> str:
        parts = []
        for name, text, is_error in results:
            shown = text if len(text) <= 400 else text[:400].rsplit(" ", 1)[0] + " ..."
            if is_error:
                parts.append(
                    f"The {name} tool reported an error: {shown or 'no details'}. I could not complete that step."
                )
            else:
                parts.append(f"Based on the result of {name}: {shown or '(empty result)'}")
        return "\n\n".join(parts)
