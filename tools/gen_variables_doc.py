"""Write docs/variables.md, the reference of every role's variables, from the roles' argument specs.

    python tools/gen_variables_doc.py            # regenerate docs/variables.md
    python tools/gen_variables_doc.py --check    # exit 1 when docs/variables.md is out of date

Reads roles/*/meta/argument_specs.yml (generated from each role's commented defaults/main.yml by
tools/gen_argument_specs.py, with the settings that have no default already merged in). For each role it
lists the options of the ``main`` entry point (name, type, default, description), then the other entry
points, with the options they add. Defaults are shown as inline code; long ones are shortened.
"""

from __future__ import annotations

import argparse
import difflib
import re
import sys
import textwrap
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]
OUTPUT = Path("docs") / "variables.md"
WIDTH = 110
# The order a reader meets the roles in site.yml; roles not named here follow in name order.
ROLE_ORDER = ("kafka", "java", "tuning", "controller", "broker", "zookeeper")
# Longest default shown whole (characters inside the code span).
MAX_DEFAULT = 64
# Marks a space inside a code span while text is wrapped (code spans are not broken across lines).
_NBSP = "\x00"


def _text(value) -> str:
    """A spec description (a string or a list of paragraphs) as one line of text."""
    if value is None:
        return ""
    if isinstance(value, list):
        return " ".join(str(v).strip() for v in value)
    return " ".join(str(value).split())


def _scalar(value) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    text = str(value)
    if text == "" or text != text.strip() or re.search(r"^[\[{&*!|>'\"%@`#,]|: | #|^(?:true|false|yes|no|null|~)$",
                                                        text, re.IGNORECASE) or text.replace(".", "").isdigit():
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    return text


def _flow(value) -> str:
    """A value in YAML flow style, as an operator would write it in an inventory."""
    if isinstance(value, dict):
        return "{" + ", ".join(f"{_scalar(k)}: {_flow(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list):
        return "[" + ", ".join(_flow(v) for v in value) + "]"
    return _scalar(value)


def _shorten(text: str, limit: int = MAX_DEFAULT) -> str:
    """``text`` cut at a separator before ``limit`` characters (a long default keeps its beginning)."""
    if len(text) <= limit:
        return text
    cut = max(text.rfind(sep, 0, limit) for sep in (", ", " ", "/", "-", "_"))
    return text[: cut if cut > limit // 2 else limit].rstrip(", ")


def render_default(option: dict) -> str:
    """The default of an option as Markdown: inline code, shortened with a note when long."""
    if "default" not in option:
        return "no default: " + ("required" if option.get("required") else "set it per host")
    value = option["default"]
    whole = _flow(value)
    if len(whole) <= MAX_DEFAULT:
        return f"`{whole}`"
    if isinstance(value, dict):
        shown = []
        for key, item in value.items():
            candidate = "{" + ", ".join(shown + [f"{_scalar(key)}: {_flow(item)}"]) + ", ...}"
            if len(candidate) > MAX_DEFAULT and shown:
                break
            shown.append(f"{_scalar(key)}: {_flow(item)}")
        return f"`{{{', '.join(shown)}, ...}}` ({len(value)} entries in all)"
    if isinstance(value, list):
        shown = []
        for item in value:
            candidate = "[" + ", ".join(shown + [_flow(item)]) + ", ...]"
            if len(candidate) > MAX_DEFAULT and shown:
                break
            shown.append(_flow(item))
        return f"`[{', '.join(shown)}, ...]` ({len(value)} items in all)"
    return f"`{_shorten(whole)}...` (shortened)"


def render_type(option: dict) -> str:
    kind = option.get("type", "str")
    if kind == "list" and option.get("elements"):
        kind = f"list of {option['elements']}"
    return kind


def _protect(text: str) -> str:
    """Keep code spans whole while wrapping: their spaces become placeholders."""
    return re.sub(r"`[^`]*`", lambda m: m.group(0).replace(" ", _NBSP), text)


def _wrap(text: str, first: str = "- ", rest: str = "  ") -> list[str]:
    lines = textwrap.wrap(_protect(text), width=WIDTH, initial_indent=first, subsequent_indent=rest,
                          break_long_words=False, break_on_hyphens=False)
    return [line.replace(_NBSP, " ") for line in lines]


def render_option(name: str, option: dict) -> list[str]:
    facts = [render_type(option)]
    if option.get("choices"):
        facts.append("one of " + ", ".join(f"`{_scalar(c)}`" for c in option["choices"]))
    default = render_default(option)
    facts.append(default if default.startswith("no default") else "default " + default)
    if option.get("no_log"):
        facts.append("secret: keep it in a vault, never logged")
    description = _text(option.get("description"))
    if description in ("", name):  # the generator of the specs names a setting it found no comment for
        return _wrap(f"**`{name}`** ({'; '.join(facts)}).")
    if not description.endswith((".", ")")):
        description += "."
    return _wrap(f"**`{name}`** ({'; '.join(facts)}): {description}")


def _roles(root: Path) -> list[Path]:
    found = {p.parent.parent.name: p for p in sorted((root / "roles").glob("*/meta/argument_specs.yml"))}
    order = [r for r in ROLE_ORDER if r in found] + sorted(r for r in found if r not in ROLE_ORDER)
    return [found[r] for r in order]


def render_role(spec_file: Path) -> list[str]:
    role = spec_file.parent.parent.name
    specs = (yaml.safe_load(spec_file.read_text()) or {}).get("argument_specs") or {}
    main = specs.get("main") or {}
    options = main.get("options") or {}
    out = [f"## {role}", ""]
    title = _text(main.get("short_description"))
    out += _wrap(f"Role `metal.kafka.{role}`" + (f": {title}." if title else "."), first="", rest="")
    for paragraph in main.get("description") or []:
        out += [""] + _wrap(_text(paragraph), first="", rest="")
    out += ["", f"{len(options)} variable{'s' if len(options) != 1 else ''}:", ""]
    for name, option in options.items():
        out += render_option(name, option or {})
    others = {n: e or {} for n, e in specs.items() if n != "main"}
    if others:
        out += ["", "Other entry points of the role (`tasks_from`), with the variables of `main`:", ""]
        for name, entry in others.items():
            added = {k: v for k, v in (entry.get("options") or {}).items() if k not in options}
            line = f"`{name}`: {_text(entry.get('short_description')) or name}"
            if added:
                line += f"; it also takes {', '.join(f'`{k}`' for k in added)} (below)"
            out += _wrap(line + ".")
        for name, entry in others.items():
            added = {k: v for k, v in (entry.get("options") or {}).items() if k not in options}
            if added:
                out += ["", f"### {role}: entry point `{name}`", ""]
                for key, option in added.items():
                    out += render_option(key, option or {})
    return out + [""]


def render(root: Path = ROOT) -> str:
    spec_files = _roles(root)
    lines = [
        "<!-- Generated by tools/gen_variables_doc.py from roles/*/meta/argument_specs.yml: do not edit by hand. -->",
        "",
        "# Variables",
        "",
    ]
    intro = (
        "Every setting the roles read, with its type, its default and what it does. Set them in the inventory "
        "(`group_vars/all/main.yml` for the whole cluster, `group_vars/kafka_brokers.yml` and the other group "
        "files, `host_vars/HOST.yml` or the host's line for one host). Before any host is touched, the "
        "inventory is checked against these types and choices, and a variable that looks like one of these "
        "but is misspelt is warned about (see [inventory.md](inventory.md))."
    )
    lines += _wrap(intro, first="", rest="") + [""]
    lines += _wrap("Kafka and ZooKeeper settings in `broker_properties`, `controller_properties` and "
                   "`zookeeper_properties` are strings: quote numbers and booleans (`\"true\"`, `\"3\"`).",
                   first="", rest="") + [""]
    lines += ["Roles:", ""]
    for spec_file in spec_files:
        role = spec_file.parent.parent.name
        lines.append(f"- [{role}](#{role})")
    lines.append("")
    for spec_file in spec_files:
        lines += render_role(spec_file)
    return "\n".join(lines).rstrip("\n") + "\n"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 when the file is out of date; write nothing")
    parser.add_argument("--root", type=Path, default=ROOT, help="the collection's root (default: this checkout)")
    args = parser.parse_args(argv)
    target = args.root / OUTPUT
    text = render(args.root)
    current = target.read_text() if target.exists() else ""
    if args.check:
        if current == text:
            return 0
        diff = difflib.unified_diff(current.splitlines(True), text.splitlines(True), str(OUTPUT), "generated")
        sys.stderr.write("".join(list(diff)[:60]))
        sys.stderr.write(f"{OUTPUT} is out of date: run python tools/gen_variables_doc.py\n")
        return 1
    if current != text:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(text)
        print(f"wrote {OUTPUT}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
