# Copyright: kafka-metal contributors
# Apache License 2.0
"""Java ``.properties`` files: render a dict of strings, parse one back.

Kafka reads every setting as a string. A YAML boolean or number reaching a template is a
common source of surprise (``true`` becoming ``True``), so rendering refuses anything that
is not a string and names the key and the fix.
"""

from __future__ import annotations

_ESCAPES = {"\\": "\\\\", "\n": "\\n", "\r": "\\r", "\t": "\\t", "\f": "\\f"}


class PropertiesError(ValueError):
    """A value cannot be rendered as a Kafka property."""


def check_string_values(props, where="properties"):
    """Return a list of error messages for values that are not strings."""
    errors = []
    if not isinstance(props, dict):
        return [f"{where} must be a mapping of setting name to string value, got {type(props).__name__}"]
    for key in sorted(props, key=str):
        value = props[key]
        if not isinstance(key, str) or not key.strip():
            errors.append(f"{where}: setting name {key!r} must be a non-empty string")
            continue
        if isinstance(value, bool):
            errors.append(
                f"{where}.{key} is the YAML boolean {value!r}; Kafka expects a string: "
                f"quote it, e.g. {key}: \"{str(value).lower()}\""
            )
        elif isinstance(value, (int, float)):
            errors.append(
                f"{where}.{key} is the YAML number {value!r}; Kafka settings are strings: "
                f"quote it, e.g. {key}: \"{value}\""
            )
        elif value is None:
            errors.append(f"{where}.{key} is empty (null); give it a quoted string value or remove it")
        elif not isinstance(value, str):
            errors.append(
                f"{where}.{key} is a {type(value).__name__}; Kafka expects a string: "
                "join lists with commas, e.g. \"a,b\""
            )
    return errors


def _escape_key(key):
    out = "".join(_ESCAPES.get(c, c) for c in key)
    for c in (" ", "=", ":", "#", "!"):
        out = out.replace(c, "\\" + c)
    return out


def _escape_value(value):
    out = "".join(_ESCAPES.get(c, c) for c in value)
    if out.startswith(" "):
        out = "\\" + out
    return out


def render(props):
    """Render a dict of strings as a sorted properties body (no header)."""
    errors = check_string_values(props)
    if errors:
        raise PropertiesError("; ".join(errors))
    lines = [f"{_escape_key(k)}={_escape_value(props[k])}" for k in sorted(props)]
    return "\n".join(lines) + ("\n" if lines else "")


def parse(text):
    """Parse a simple properties text (as written by Kafka or by :func:`render`)."""
    result = {}
    logical = []
    for raw in text.splitlines():
        line = raw.lstrip() if not logical else raw.lstrip()
        if not logical and (not line or line[0] in "#!"):
            continue
        # a trailing odd number of backslashes continues the line
        stripped = line.rstrip("\n")
        n = len(stripped) - len(stripped.rstrip("\\"))
        if n % 2 == 1:
            logical.append(stripped[:-1])
            continue
        logical.append(stripped)
        entry = "".join(logical)
        logical = []
        key, value = _split(entry)
        result[_unescape(key)] = _unescape(value)
    if logical:
        key, value = _split("".join(logical))
        result[_unescape(key)] = _unescape(value)
    return result


def _split(entry):
    i = 0
    while i < len(entry):
        c = entry[i]
        if c == "\\":
            i += 2
            continue
        if c in "=: \t":
            key = entry[:i]
            rest = entry[i:].lstrip(" \t")
            if rest[:1] in ("=", ":") and c in " \t":
                rest = rest[1:].lstrip(" \t")
            elif c in "=:":
                rest = entry[i + 1:].lstrip(" \t")
            return key, rest
        i += 1
    return entry, ""


def _unescape(text):
    out = []
    i = 0
    mapping = {"n": "\n", "r": "\r", "t": "\t", "f": "\f"}
    while i < len(text):
        c = text[i]
        if c == "\\" and i + 1 < len(text):
            nxt = text[i + 1]
            out.append(mapping.get(nxt, nxt))
            i += 2
            continue
        out.append(c)
        i += 1
    return "".join(out)
