"""The JSON-schema subset structured outputs accept; anything else is a 400.

The structured-outputs page (https://platform.claude.com/docs/en/build-with-claude/structured-outputs,
"JSON Schema limitations") lists as not supported: recursive schemas, external ``$ref``, numerical
constraints (``minimum``, ``maximum``, ``multipleOf``), string constraints (``minLength``,
``maxLength``), array constraints beyond ``minItems`` of 0 or 1, and ``additionalProperties`` set to
anything other than ``false``; "If you use an unsupported feature, you'll receive a 400 error with
details." (The SDKs' ``messages.parse()`` strips such constraints before sending and checks them on
the reply; a schema sent as is through ``messages.create()`` gets the 400.)

Wording, as the API answers (quoted in public bug reports): "output_config.format.schema: For
'integer' type, property 'minimum' is not supported", "... For 'number' type, properties maximum,
minimum are not supported", "... For 'array' type, 'minItems' values other than 0 or 1 are not
supported". The messages for ``additionalProperties``, external and recursive ``$ref`` follow the
same pattern; they were not found verbatim.
"""

from __future__ import annotations

from typing import Any, Iterator

__all__ = ["unsupported_feature"]

_NUMERIC = ("exclusiveMaximum", "exclusiveMinimum", "maximum", "minimum", "multipleOf")
_STRING = ("maxLength", "minLength")
_ARRAY = ("maxItems", "uniqueItems")
_CHILD_MAPS = ("properties", "$defs", "definitions", "patternProperties")
_CHILD_LISTS = ("anyOf", "allOf", "oneOf", "prefixItems")
_CHILD_ONE = ("items", "additionalProperties", "not", "if", "then", "else", "contains")


def _children(node: dict[str, Any]) -> Iterator[Any]:
    for key in _CHILD_MAPS:
        value = node.get(key)
        if isinstance(value, dict):
            yield from value.values()
    for key in _CHILD_LISTS:
        value = node.get(key)
        if isinstance(value, list):
            yield from value
    for key in _CHILD_ONE:
        value = node.get(key)
        if isinstance(value, dict):
            yield value


def _kind(node: dict[str, Any], default: str) -> str:
    kind = node.get("type")
    if isinstance(kind, str):
        return kind
    if isinstance(kind, list):
        named = [k for k in kind if isinstance(k, str) and k != "null"]
        return named[0] if named else default
    return default


def _node_problem(node: dict[str, Any]) -> str | None:
    for keys, default in ((_NUMERIC, "number"), (_STRING, "string"), (_ARRAY, "array")):
        found = sorted(k for k in keys if k in node)
        if found:
            kind = _kind(node, default)
            if len(found) == 1:
                return f"For '{kind}' type, property '{found[0]}' is not supported"
            return f"For '{kind}' type, properties {', '.join(found)} are not supported"
    min_items = node.get("minItems")
    if min_items is not None and min_items not in (0, 1):
        return f"For '{_kind(node, 'array')}' type, 'minItems' values other than 0 or 1 are not supported"
    extra = node.get("additionalProperties")
    if "additionalProperties" in node and extra is not False:
        return f"For '{_kind(node, 'object')}' type, 'additionalProperties' values other than false are not supported"
    ref = node.get("$ref")
    if isinstance(ref, str) and not ref.startswith("#"):
        return f"External $ref is not supported: {ref!r}"
    return None


def _resolve(root: dict[str, Any], ref: str) -> Any:
    target: Any = root
    for part in ref[1:].split("/"):
        if not part:
            continue
        part = part.replace("~1", "/").replace("~0", "~")
        if isinstance(target, dict) and part in target:
            target = target[part]
        elif isinstance(target, list) and part.isdigit() and int(part) < len(target):
            target = target[int(part)]
        else:
            return None
    return target


def _refs_in(node: Any, seen: set[int]) -> Iterator[str]:
    if not isinstance(node, dict) or id(node) in seen:
        return
    seen.add(id(node))
    ref = node.get("$ref")
    if isinstance(ref, str) and ref.startswith("#"):
        yield ref
    for child in _children(node):
        yield from _refs_in(child, seen)


def _recursive(root: dict[str, Any]) -> bool:
    """Whether a local ``$ref`` leads back (directly or through others) to a schema containing it."""

    acyclic: set[str] = set()  # refs already shown to lead nowhere back

    def visit(ref: str, path: tuple[str, ...]) -> bool:
        if ref in path:
            return True
        if ref in acyclic:
            return False
        target = _resolve(root, ref)
        if any(visit(inner, (*path, ref)) for inner in _refs_in(target, set())):
            return True
        acyclic.add(ref)
        return False

    return any(visit(ref, ()) for ref in _refs_in(root, set()))


def unsupported_feature(schema: dict[str, Any], where: str = "output_config.format.schema") -> str | None:
    """The API's 400 message for the first feature of ``schema`` outside the supported subset, or None."""
    stack: list[Any] = [schema]
    seen: set[int] = set()
    while stack:
        node = stack.pop(0)
        if not isinstance(node, dict) or id(node) in seen:
            continue
        seen.add(id(node))
        problem = _node_problem(node)
        if problem is not None:
            return f"{where}: {problem}"
        stack.extend(_children(node))
    if _recursive(schema):
        return f"{where}: Recursive schemas are not supported"
    return None
