"""Structured output: valid JSON when the prompt asks for it.

Triggers: the system prompt or last user turn asks for JSON ("respond in JSON", "return a JSON
object", "as JSON", "JSON only", ...), or the assistant prefill starts with ``{`` or ``[``.
Keys come from the prompt when it names them ("keys: a, b, c", "with fields sentiment and
summary", or a JSON example/skeleton whose shape and value types are reused); otherwise the
object is ``{"answer": ...}``. Values are filled deterministically from the content by key name
(sentiment and categories via the classifier, summaries via the first sentence, numbers, names,
emails, dates, lists of keywords). With a prefill, the reply is the *continuation*, so
``prefill + reply`` parses, as the API continues from a prefill.

With ``output_config.format`` (structured outputs) the reply is JSON that validates against the
request's schema, whatever the prompt says (:mod:`.schema`); the values come from the content
as above, and ``enum`` properties are classified among the schema's values.
"""

from __future__ import annotations

import json
import re
from typing import Any

from .base import Reply, SkillContext, TextOut
from .schema import instance_for
from .json_values import JsonValues
from .text import prefill_text, split_sentences

__all__ = [
    "StructuredSkill",
    "wants_json",
    "find_keys",
    "find_skeleton",
    "build_object",
    "continue_prefill",
    "schema_object",
]

_ASKS_JSON = re.compile(
    r"\b(?:respond|reply|answer|return|output|give|format|formatted|produce|provide|emit|generate|write)\b[^.\n?]{0,40}\bjson\b"
    r"|\b(?:as|in|into|using)\s+(?:valid\s+|a\s+|strict\s+|pure\s+|plain\s+)?json\b"
    r"|\bjson\s+(?:object|array|only|format|output|response|with)\b"
    r"|\bonly\s+(?:valid\s+)?json\b",
    re.I,
)
_KEY = r"[`'\"]?[A-Za-z_][\w-]*[`'\"]?"
_KEYS_LIST = re.compile(
    rf"\b(?:keys?|fields?|properties|attributes)[ \t]*(?:named|called)?[ \t]*:?[ \t]*"
    rf"((?:{_KEY}(?:[ \t]*\([^)\n]*\))?[ \t]*(?:,[ \t]*(?:and[ \t]+|or[ \t]+)?|[ \t]+and[ \t]+|[ \t]+or[ \t]+|[ \t]+)?)+)",
    re.I,
)
# fmt: off
_STOP_KEYWORDS = {"for", "from", "about", "that", "describing", "based", "given", "using", "in", "of", "to", "with",
                  "the", "this", "these", "each", "which", "where", "when", "summarizing", "extracted", "only"}
# fmt: on


def wants_json(system: str, user: str, prefill: str) -> bool:
    """Whether the request asks for JSON output."""
    if prefill.lstrip().startswith(("{", "[")):
        return True
    return bool(_ASKS_JSON.search(user) or _ASKS_JSON.search(system))


def find_keys(text: str) -> list[str]:
    """Key names listed in the prompt ('keys: a, b, c', 'with fields a and b'), in order."""
    for m in _KEYS_LIST.finditer(text):
        keys: list[str] = []
        for raw in re.findall(rf"{_KEY}(?:\s*\([^)]*\))?|,|\band\b|\bor\b", m.group(1)):
            if raw in (",", "and", "or"):
                continue
            key = re.sub(r"\s*\(.*", "", raw).strip("`'\"")
            quoted = raw[:1] in "`'\""
            if not quoted and key.lower() in _STOP_KEYWORDS:
                break
            if key.lower() == "json":
                continue
            keys.append(key)
        if keys:
            return list(dict.fromkeys(keys))
    return []


def find_skeleton(text: str) -> Any:
    """A JSON object/array example in the prompt (fenced or inline), or None."""
    for m in re.finditer(r"[{\[]", text):
        depth, end = 0, None
        for j in range(m.start(), len(text)):
            c = text[j]
            if c in "{[":
                depth += 1
            elif c in "}]":
                depth -= 1
                if depth == 0:
                    end = j + 1
                    break
        if end is None:
            continue
        snippet = text[m.start() : end]
        try:
            value = json.loads(snippet)
        except json.JSONDecodeError:
            # A skeleton with placeholders ({"name": ..., "age": <int>}): recover its keys.
            keys = re.findall(r"[\"']([A-Za-z_][\w-]*)[\"']\s*:", snippet)
            if keys and snippet.startswith("{"):
                return {k: "" for k in dict.fromkeys(keys)}
            continue
        if isinstance(value, (dict, list)) and value:
            return value
    return None


_INSTRUCTION = re.compile(
    r"\b(json|keys?|fields?|properties|respond|return|output|extract|format|schema|reply|answer with)\b", re.I
)


def _content(user: str) -> str:
    """The material the JSON describes: the user turn without its instruction sentences.

    An instruction that introduces the material with a colon ("... for: I love it") keeps what
    follows the colon.
    """
    kept = []
    for s in split_sentences(user):
        if _INSTRUCTION.search(s):
            head = s.split(":", 1)[0]
            if re.search(r"\b(keys?|fields?|properties|attributes)\s*$", head, re.I):
                continue  # "keys: a, b, c" lists keys, not content
            if ":" in s and s.rsplit(":", 1)[1].strip():
                kept.append(s.rsplit(":", 1)[1].strip())
            continue
        kept.append(s)
    return " ".join(kept).strip() or user


def build_object(ctx: SkillContext, prompt: str, content: str) -> Any:
    """The JSON value the prompt asks for, filled from ``content``."""
    values = JsonValues(ctx, content, prompt)
    skeleton = find_skeleton(prompt)
    if isinstance(skeleton, dict):
        return {k: values.for_key(k, v if v not in ("", None) else None) for k, v in skeleton.items()}
    keys = find_keys(prompt)
    if isinstance(skeleton, list) and skeleton and isinstance(skeleton[0], dict):
        return [{k: values.for_key(k, v) for k, v in skeleton[0].items()}]
    if re.search(r"\bjson\s+(?:array|list)\b|\b(?:array|list)\s+(?:of|in)\b", prompt, re.I):
        if keys:
            return [{k: values.for_key(k) for k in keys}]
        return values._list("items", None) or ["item"]
    if keys:
        return {k: values.for_key(k) for k in keys}
    return {"answer": values.for_key("answer")}


def continue_prefill(prefill: str, value: Any) -> str:
    """Text that, appended to ``prefill``, makes valid JSON (preferably ``value`` itself)."""
    start = prefill.strip()
    for indent in (2, None):
        full = json.dumps(value, indent=indent, ensure_ascii=False)
        if full.startswith(start):
            return full[len(start) :]
    return _close_json(start, value)


def _close_json(prefix: str, value: Any) -> str:
    """Complete an arbitrary JSON prefix: close an open string, supply a missing value, close brackets."""
    stack: list[str] = []
    in_string = escape = False
    string_is_key = False
    last = ""  # last significant character outside strings
    for c in prefix:
        if in_string:
            if escape:
                escape = False
            elif c == "\\":
                escape = True
            elif c == '"':
                in_string = False
                last = '"'
            continue
        if c == '"':
            in_string = True
            string_is_key = bool(stack) and stack[-1] == "{" and last in ("{", ",")
        elif c in "{[":
            stack.append(c)
            last = c
        elif c in "}]":
            if stack:
                stack.pop()
            last = c
        elif not c.isspace():
            last = c
    out = ""
    filler = json.dumps(value if not isinstance(value, (dict, list)) else "ok")
    if in_string:
        out += "\\" if escape else ""
        out += '"'
        if string_is_key:
            out += ": " + filler
    elif last == ":":
        out += " " + filler
    elif last == "," and stack:
        out += (' "more": ' if stack[-1] == "{" else " ") + filler
    for opener in reversed(stack):
        out += "}" if opener == "{" else "]"
    if not stack and not prefix:
        out = json.dumps(value)
    return out


def schema_object(ctx: SkillContext, schema: dict[str, Any]) -> Any:
    """A value valid against ``schema`` (structured outputs), filled from the request's content."""
    req = ctx.request
    prompt = "\n".join(p for p in (req.system_text, req.last_user_text) if p)
    values = JsonValues(ctx, _content(req.last_user_text) or prompt, prompt)

    def fill(key: str, hint: Any) -> Any:
        if isinstance(hint, tuple):  # an enum: classify among its string values
            labels = [o for o in hint if isinstance(o, str)]
            return values._label(labels) if labels else hint[0]
        if hint is None or hint == "":
            return values.for_key(key)
        return values.for_key(key, hint)

    try:
        return instance_for(schema, fill)
    except Exception:  # noqa: BLE001 - a schema the builder cannot handle must never make a 500
        return {}


class StructuredSkill:
    """Answers in JSON when asked to (or when the prefill opens a JSON value)."""

    name = "structured"

    def respond(self, ctx: SkillContext) -> Reply | None:
        """Valid JSON text (or its continuation after a prefill), or None when JSON is not asked for."""
        req = ctx.request
        prefill = prefill_text(req)
        user = req.last_user_text
        schema = req.output_schema
        if isinstance(schema, dict):
            return Reply(blocks=(TextOut(json.dumps(schema_object(ctx, schema), ensure_ascii=False)),), skill=self.name)
        if not wants_json(req.system_text, user, prefill):
            return None
        if prefill and not prefill.lstrip().startswith(("{", "[")):
            # A prose prefill: the API would continue the prose, so let other skills answer.
            return None
        prompt = "\n".join(p for p in (req.system_text, user) if p)
        value = build_object(ctx, prompt, _content(user))
        if prefill:
            if prefill.lstrip().startswith("[") and not isinstance(value, list):
                value = [value]
            return Reply(blocks=(TextOut(continue_prefill(prefill, value)),), skill=self.name)
        return Reply(blocks=(TextOut(json.dumps(value, indent=2, ensure_ascii=False)),), skill=self.name)
