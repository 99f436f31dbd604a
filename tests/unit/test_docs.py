"""The documentation is in step with the code and speaks to operators.

- docs/variables.md is what tools/gen_variables_doc.py makes from the roles' argument specs now;
- README.md, docs/*.md and CHANGELOG.md hold no issue references or development history;
- every relative link in README.md and docs/*.md points to a file that exists (and to a heading there).
"""

from __future__ import annotations

import functools
import importlib.util
import re
import urllib.parse
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = sorted((ROOT / "docs").glob("*.md"))
LINKED = [ROOT / "README.md", *DOCS]
OPERATOR_TEXT = [*LINKED, ROOT / "CHANGELOG.md"]


def _ids(paths):
    return [str(p.relative_to(ROOT)) for p in paths]


def _generator():
    spec = importlib.util.spec_from_file_location("gen_variables_doc", ROOT / "tools" / "gen_variables_doc.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_variables_doc_is_generated_from_the_current_specs():
    current = (ROOT / "docs" / "variables.md").read_text()
    assert current == _generator().render(ROOT), (
        "docs/variables.md is out of date: run python tools/gen_variables_doc.py")


def test_variables_doc_lists_every_main_option():
    import yaml

    text = (ROOT / "docs" / "variables.md").read_text()
    for spec_file in sorted(ROOT.glob("roles/*/meta/argument_specs.yml")):
        options = yaml.safe_load(spec_file.read_text())["argument_specs"]["main"].get("options") or {}
        for name in options:
            assert f"**`{name}`**" in text, f"{name} ({spec_file.parent.parent.name}) is not in docs/variables.md"


def test_generator_check_mode_reports_a_stale_file(tmp_path):
    gen = _generator()
    (tmp_path / "roles" / "demo" / "meta").mkdir(parents=True)
    (tmp_path / "roles" / "demo" / "meta" / "argument_specs.yml").write_text(
        "argument_specs:\n  main:\n    short_description: A role\n    options:\n"
        "      demo_setting: {type: str, default: x, description: A setting.}\n")
    assert gen.main(["--check", "--root", str(tmp_path)]) == 1  # no file yet
    assert gen.main(["--root", str(tmp_path)]) == 0
    assert gen.main(["--check", "--root", str(tmp_path)]) == 0
    assert "**`demo_setting`** (str; default `x`): A setting." in (tmp_path / "docs" / "variables.md").read_text()


def test_long_defaults_are_shortened():
    gen = _generator()
    many = {f"net.setting_{i}": i for i in range(20)}
    shown = gen.render_default({"default": many})
    assert shown.startswith("`{net.setting_0: 0") and shown.endswith("(20 entries in all)")
    assert len(shown) < 100
    url = gen.render_default({"default": "https://downloads.example/dist/kafka/{{ v }}/kafka_{{ s }}-{{ v }}.tgz"})
    assert url.endswith("...` (shortened)") and len(url) < 90
    assert gen.render_default({"default": ""}) == '`""`'
    assert gen.render_default({"default": "4.1.1"}) == '`"4.1.1"`'
    assert gen.render_default({"default": []}) == "`[]`"
    assert gen.render_default({}) == "no default: set it per host"


# Phrases that belong to the project's history, not to a description of the product. Each pattern is
# matched case-insensitively against the text outside code blocks.
HISTORY = [
    (r"\bissues?\s*#?\d+", "an issue reference"),
    (r"(?<![\w&/`])#\d+\b", "an issue or pull request number"),
    (r"\b(?:pull request|merge request)\b|\bPR\s*#?\d+", "a pull request reference"),
    (r"\bclosing notes?\b", "a note about closing work"),
    (r"\bstops?\s+\d+\b", "a numbered stop of the work"),
    (r"\b(?:this|the previous|the last|the next|an earlier) (?:session|round|iteration)\b", "a work session"),
    (r"\bsession\s+\d+\b", "a work session"),
    (r"\b(?:in|by|since) (?:this|that|the last) (?:commit|change set|branch)\b", "a commit"),
    (r"\bcommit [0-9a-f]{7,40}\b", "a commit"),
    (r"\bwe (?:added|fixed|changed|moved|renamed|decided|now)\b", "the team's history"),
    (r"\b(?:TODO|FIXME|XXX)\b", "a work note"),
    (r"\bthe brief\b|\bhand-?over\b", "a work note"),
    (r"\bwhen the machine was (?:slow|busy|loaded)\b", "a note about a test machine"),
    (r"\bmeasured (?:earlier|before|yesterday|today|then|last)\b", "a dated measurement"),
    (r"\b(?:is|are|was|were) now (?:fixed|gone)\b|\b(?:they are|it is) gone\b", "the project's history"),
    (r"\bwhat it (?:did|used to)\b|\bhonou?red by some\b", "the project's history"),
]
# The changelog says what changed for users, not how the project tests itself.
CHANGELOG_ONLY = [
    (r"\bmolecule\b|\bscenarios?\b|\bpytest\b|\.ci/|\bCI\b|\btest (?:suite|tiers?)\b", "how the project tests itself"),
    (r"\btests? (?:were|was|are|is) added\b|\bchecks\.txt\b|\blist_checks\b", "how the project tests itself"),
    (r"\btools/bench_", "a benchmark of the project's own"),
]
# Package registries and mirror hosts: operators use their own (their apt sources, their Maven settings). No
# host name at all, then, but the example domains and the download sites the roles' own defaults name.
HOST = r"\b(?:[a-z0-9-]+\.)+(?:org|com|net|io|dev|edu|info)\b"
EXAMPLE_DOMAINS = ("example.com", "example.net", "example.org")


@functools.cache
def default_hosts():
    """The hosts of the URLs in the roles' defaults (the Kafka download site), read from those files."""
    text = "".join(p.read_text() for p in (ROOT / "roles").glob("*/defaults/main.yml"))
    return {urllib.parse.urlsplit(u).hostname for u in re.findall(r"https?://[^\s\"'{}]+", text)}


def _foreign_host(match):
    host = match.group(0).lower()
    return not (host.endswith(EXAMPLE_DOMAINS) or host in default_hosts())


REGISTRIES = [
    (HOST, "a host name (a registry or mirror is the operator's own)"),
    (r"\bMaven Central\b|\bPyPI\b|\bDebian's mirror\b", "a registry by name"),
]


def _prose(text):
    """The text outside fenced code blocks."""
    return re.sub(r"^```.*?^```[^\n]*$", "", text, flags=re.M | re.S)


@pytest.mark.parametrize("path", OPERATOR_TEXT, ids=_ids(OPERATOR_TEXT))
def test_no_development_history(path):
    text = path.read_text()
    found = []
    patterns = HISTORY + REGISTRIES + (CHANGELOG_ONLY if path.name == "CHANGELOG.md" else [])
    for pattern, what in patterns:
        for m in re.finditer(pattern, text, flags=re.IGNORECASE):
            if pattern == HOST and not _foreign_host(m):
                continue
            line = text.count("\n", 0, m.start()) + 1
            found.append(f"{path.name}:{line}: {m.group(0)!r} ({what})")
    assert not found, "operator documentation speaks of the project's history or a registry:\n" + "\n".join(found)


def test_history_patterns_catch_what_they_are_for():
    samples = ["see issue 18", "fixed in #18", "the closing note says", "as of stop 26", "in this session",
               "we added it", "TODO: later", "the mirror at packages.somewhere.org", "from Maven Central",
               "costs a fraction of what it did", "they are gone"]
    for sample in samples:
        assert any(re.search(p, sample, flags=re.IGNORECASE) for p, _ in HISTORY + REGISTRIES), sample
    for sample in ["Molecule scenario `secure`", "CI: the VM scenario", "Test tiers: .ci/quick"]:
        assert any(re.search(p, sample, flags=re.IGNORECASE) for p, _ in CHANGELOG_ONLY), sample
    fine = ["3 controllers + 3 brokers", "systemctl stop", "the node stops", "[Security](#security)",
            "one session per host", "each node is restarted"]
    for sample in fine:
        assert not any(re.search(p, sample, flags=re.IGNORECASE) for p, _ in HISTORY + REGISTRIES), sample
    # host names: the example domains and the roles' own download site pass, any other host does not
    hosts = [m for m in re.finditer(HOST, "kb1.example.net, mirror.corp.example.com, packages.somewhere.org")]
    assert [_foreign_host(m) for m in hosts] == [False, False, True]
    assert default_hosts() and not any(_foreign_host(re.search(HOST, h)) for h in default_hosts())


def _slug(heading):
    """A heading's anchor as GitHub makes it: lower case, punctuation dropped, spaces as hyphens."""
    text = re.sub(r"[`*_]", lambda m: "_" if m.group(0) == "_" else "", heading.strip().lower())
    text = re.sub(r"[^\w\- ]", "", text)
    return text.replace(" ", "-")


def _anchors(path):
    anchors = set()
    for line in _prose(path.read_text()).splitlines():
        m = re.match(r"^#{1,6}\s+(.*?)\s*#*\s*$", line)
        if m:
            anchors.add(_slug(m.group(1)))
    return anchors


def _links(text):
    """Link targets of inline links and reference definitions, outside code."""
    prose = re.sub(r"`[^`\n]*`", "", _prose(text))
    targets = [m.group(1) for m in re.finditer(r"\]\(\s*<?([^)\s>]+)>?(?:\s+\"[^\"]*\")?\s*\)", prose)]
    targets += [m.group(1) for m in re.finditer(r"^\s*\[[^\]]+\]:\s*<?(\S+?)>?\s*$", prose, flags=re.M)]
    return targets


@pytest.mark.parametrize("path", LINKED, ids=_ids(LINKED))
def test_relative_links_point_to_files_that_exist(path):
    broken = []
    for target in _links(path.read_text()):
        if re.match(r"^[a-z][a-z0-9+.-]*:", target, flags=re.I):  # http:, https:, mailto:
            continue
        file_part, _, fragment = target.partition("#")
        dest = (path.parent / file_part).resolve() if file_part else path
        if not dest.exists():
            broken.append(f"{target}: {dest} does not exist")
        elif fragment and dest.suffix == ".md" and fragment not in _anchors(dest):
            broken.append(f"{target}: no heading #{fragment} in {dest.relative_to(ROOT)}")
    assert not broken, f"{path.relative_to(ROOT)} has broken links:\n" + "\n".join(broken)


def test_readme_links_into_every_document():
    readme = (ROOT / "README.md").read_text()
    missing = [p.name for p in DOCS if f"docs/{p.name}" not in readme]
    assert not missing, f"README.md does not link to {', '.join(missing)}"
