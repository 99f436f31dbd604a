# Copyright: kafka-metal contributors
# Apache License 2.0
"""Finalizing an upgrade: which feature levels move, decided from the cluster's own answers.

After a rolling upgrade every node runs the new release, but the cluster's finalized feature levels
(``metadata.version``, ``kraft.version``, ``group.version``, ...) stay where they were, which keeps a
downgrade possible. A finalize raises them, and that cannot be undone. It raises exactly:

- ``metadata.version`` to the level Kafka's own version mapping gives for the target release;
- the features the operator names (``NAME=LEVEL``), each checked against the range the nodes support;
- ``kraft.version`` only when asked for on its own (:data:`DYNAMIC_QUORUM`): raising it turns a static
  controller quorum (``controller.quorum.voters``) dynamic, for good.

Every other feature keeps its level even where the release's mapping has a higher one; the plan says
so, and names the option that would raise it. Nothing is ever lowered.

The decisions (:func:`plan`) have no I/O and work on the text of Kafka's own tools, run with the tools
of the release every node now runs: ``kafka-features describe`` (:func:`parse_describe`) and
``kafka-features version-mapping --release-version R`` (:func:`parse_mapping`). :func:`finalize` is the
I/O around them, through a ``run(argv) -> (rc, stdout, stderr)`` the caller provides: the
``kafka_features`` module runs the tools on the broker host it runs on, ``kafka-metal upgrade
--finalize`` over SSH on a broker host. One implementation for both.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

METADATA = "metadata.version"
KRAFT = "kraft.version"
DYNAMIC_QUORUM = "--dynamic-quorum"
TOOL = "kafka-features.sh"

_DESCRIBE_RE = re.compile(
    r"^Feature:\s*(?P<name>\S+)\s+SupportedMinVersion:\s*(?P<min>\S+)\s+SupportedMaxVersion:\s*(?P<max>\S+)"
    r"\s+FinalizedVersionLevel:\s*(?P<finalized>\S+)")
_MAPPING_RE = re.compile(r"^(?P<name>[a-z][a-z0-9_.-]*)=(?P<level>[0-9]+)(?:\s+\((?P<label>[^)]*)\))?\s*$")
_FEATURE_ARG_RE = re.compile(r"^(?P<name>[a-z][a-z0-9_.-]*)=(?P<level>[0-9]+)$")
_RELEASE_RE = re.compile(r"^(?P<major>[0-9]+)\.(?P<minor>[0-9]+)(?:\.[0-9]+)?$")


class FeatureError(ValueError):
    """A finalize that cannot go ahead; the message says why and what to do."""


@dataclass(frozen=True)
class Reported:
    """One line of ``kafka-features describe``: levels as printed (``metadata.version`` by name)."""

    name: str
    supported_min: str
    supported_max: str
    finalized: str


@dataclass(frozen=True)
class Level:
    """A feature of the cluster with numeric levels; ``label`` is Kafka's name for a ``metadata.version``."""

    finalized: int
    supported_max: int
    label: str | None = None
    max_label: str | None = None

    def show(self):
        return f"{self.label} ({self.finalized})" if self.label else str(self.finalized)

    def show_target(self, level, release):
        """How a raised level reads: by name where Kafka gave one (the nodes' highest metadata.version)."""
        if self.label is None:
            return str(level)
        if level == self.supported_max and self.max_label:
            return f"{self.max_label} ({level})"
        return f"{level} (release {release})"


@dataclass(frozen=True)
class Change:
    name: str
    before: int
    after: int
    before_text: str
    after_text: str


@dataclass(frozen=True)
class Kept:
    name: str
    level: int
    text: str
    note: str = ""


@dataclass
class Plan:
    """What a finalize does: ``changes`` in the order sent, ``kept`` with the reason, ``warnings``."""

    release: str
    changes: list = field(default_factory=list)
    kept: list = field(default_factory=list)
    warnings: list = field(default_factory=list)

    @property
    def changed(self):
        return bool(self.changes)

    def feature_args(self):
        """``--feature NAME=LEVEL`` arguments of ``kafka-features upgrade`` (numeric levels, as Kafka takes)."""
        args = []
        for c in self.changes:
            args += ["--feature", f"{c.name}={c.after}"]
        return args

    def lines(self):
        width = max([len(c.name) for c in self.changes] + [len(k.name) for k in self.kept] + [16])
        out = [f"feature levels for release {self.release} (from Kafka's version mapping):"]
        for c in self.changes:
            out.append(f"  raise {c.name:<{width}}  {c.before_text} -> {c.after_text}")
        for k in self.kept:
            out.append(f"  keep  {k.name:<{width}}  {k.text}" + (f"  ({k.note})" if k.note else ""))
        if not self.changes:
            out.append("nothing to do: every feature is where this finalize would put it")
        out += [f"WARNING: {w}" for w in self.warnings]
        return out

    def as_dict(self):
        return {
            "release": self.release,
            "changes": [{"feature": c.name, "before": c.before, "after": c.after} for c in self.changes],
            "kept": [{"feature": k.name, "level": k.level, "note": k.note} for k in self.kept],
            "warnings": list(self.warnings),
        }


# ---------------------------------------------------------------------------
# Parsing what Kafka's tools print, and what the operator asks for
# ---------------------------------------------------------------------------


def release_of(version):
    """``4.1.1`` or ``4.1`` -> ``4.1`` (the release whose latest metadata.version a finalize takes)."""
    m = _RELEASE_RE.match(str(version).strip())
    if not m:
        raise FeatureError(f"{version!r} is not a Kafka version like 4.1.1 or a release like 4.1")
    return f"{int(m['major'])}.{int(m['minor'])}"


def parse_describe(text):
    """``kafka-features describe`` -> ``{name: Reported}``. A feature never finalized counts as level 0."""
    found = {}
    for line in text.splitlines():
        m = _DESCRIBE_RE.match(line.strip())
        if m:
            finalized = m["finalized"]
            found[m["name"]] = Reported(m["name"], m["min"], m["max"], "0" if finalized == "-" else finalized)
    if not found:
        raise FeatureError("kafka-features describe printed no feature; is the broker reachable with "
                           "admin.properties?")
    return found


def parse_mapping(text):
    """``kafka-features version-mapping`` -> ``{name: level}`` (``metadata.version`` by number)."""
    found = {}
    for line in text.splitlines():
        m = _MAPPING_RE.match(line.strip())
        if m:
            found[m["name"]] = int(m["level"])
    if METADATA not in found:
        raise FeatureError("kafka-features version-mapping printed no metadata.version")
    return found


def parse_feature_args(items):
    """``["group.version=1", ...]`` (or a mapping) -> ``{name: level}``; an unclear item is an error."""
    if isinstance(items, dict):
        items = [f"{k}={v}" for k, v in items.items()]
    out = {}
    for item in items or ():
        m = _FEATURE_ARG_RE.match(str(item).strip())
        if not m:
            raise FeatureError(f"feature {item!r}: write NAME=LEVEL with a whole-number level, e.g. group.version=1")
        if m["name"] in out and out[m["name"]] != int(m["level"]):
            raise FeatureError(f"feature {m['name']} is named twice with different levels")
        out[m["name"]] = int(m["level"])
    return out


def static_voters(server_properties):
    """Whether a node's configuration (a dict) lists a static controller quorum."""
    return bool(str(server_properties.get("controller.quorum.voters", "")).strip())


def levels(reported, metadata_numbers):
    """Numeric levels of every reported feature; ``metadata_numbers`` maps metadata.version names to
    numbers (Kafka's own mapping, read by the caller)."""
    out = {}
    for name, r in reported.items():
        if name == METADATA:
            try:
                out[name] = Level(metadata_numbers[r.finalized], metadata_numbers[r.supported_max],
                                  r.finalized, r.supported_max)
            except KeyError as exc:
                raise FeatureError(f"no number known for metadata.version {exc.args[0]}") from None
            continue
        try:
            out[name] = Level(int(r.finalized), int(r.supported_max))
        except ValueError:
            raise FeatureError(f"kafka-features describe printed a level for {name} that is not a number: "
                               f"{r.finalized!r} / {r.supported_max!r}") from None
    return out


# ---------------------------------------------------------------------------
# The decision
# ---------------------------------------------------------------------------


def plan(current, release, mapping, requested=None, dynamic_quorum=False, static=True):
    """What a finalize to ``release`` raises.

    ``current``: ``{name: Level}`` (:func:`levels`); ``mapping``: the release's levels (:func:`parse_mapping`);
    ``requested``: features the operator names (``{name: level}``); ``dynamic_quorum``: raise
    ``kraft.version`` to the release's level; ``static``: the nodes' configuration lists static voters (for
    the warning's wording). Raises :class:`FeatureError` listing every problem; nothing is changed then.
    """
    requested = dict(requested or {})
    problems = []
    result = Plan(release=release)
    if METADATA not in current:
        raise FeatureError("the cluster reports no metadata.version: in ZooKeeper mode the feature level is "
                           "inter.broker.protocol.version; set it in broker_properties and roll")
    targets = {}

    mv, target_mv = current[METADATA], mapping[METADATA]
    if target_mv > mv.supported_max:
        problems.append(f"metadata.version {target_mv} (release {release}) is above what the nodes support "
                        f"(up to {mv.show(mv.supported_max)}): every node must run Kafka {release} first "
                        f"(kafka-metal upgrade --to {release}.x, without --finalize)")
    else:
        targets[METADATA] = target_mv

    if METADATA in requested:
        problems.append("metadata.version follows the target version (--to); do not name it with --feature")
    if KRAFT in requested:
        problems.append(f"kraft.version is not raised with --feature: raising it makes the controller quorum "
                        f"dynamic, for good; ask for that on its own with {DYNAMIC_QUORUM} "
                        "(playbook: kafka_upgrade_dynamic_quorum=true)")
    for name, level in sorted(requested.items()):
        if name in (METADATA, KRAFT):
            continue
        if name not in current:
            problems.append(f"{name} is not a feature the nodes know (they know: {', '.join(sorted(current))})")
        elif level > current[name].supported_max:
            problems.append(f"{name}={level} is above the highest level the nodes support "
                            f"({current[name].supported_max})")
        elif level < current[name].finalized:
            problems.append(f"{name}={level} is below its finalized level {current[name].finalized}: a finalize "
                            "never lowers a feature (a downgrade is kafka-features downgrade, by hand)")
        else:
            targets[name] = level

    if dynamic_quorum:
        kv = current.get(KRAFT)
        wanted = mapping.get(KRAFT, 0)
        if kv is None:
            problems.append("the nodes do not know kraft.version: a dynamic quorum needs Kafka 3.9 or later")
        elif kv.finalized >= max(wanted, 1):
            result.kept.append(Kept(KRAFT, kv.finalized, kv.show(), "the quorum is already dynamic"))
        elif wanted < 1:
            problems.append(f"release {release} maps kraft.version to {wanted}: a dynamic quorum needs a release "
                            "of 3.9 or later")
        elif wanted > kv.supported_max:
            problems.append(f"kraft.version {wanted} is above what the nodes support ({kv.supported_max})")
        else:
            targets[KRAFT] = wanted
            result.warnings.append(
                f"kraft.version {kv.finalized} -> {wanted} makes the controller quorum dynamic, and it cannot be "
                "undone: the voter set then lives in the metadata log and changes only through "
                "kafka-metadata-quorum add-controller / remove-controller."
                + (" The nodes' configuration still lists controller.quorum.voters: from now on that list no "
                   "longer changes who votes (only add-controller / remove-controller do)." if static else ""))

    if problems:
        raise FeatureError("finalize refused, nothing changed:\n- " + "\n- ".join(problems))

    order = [METADATA] + sorted(n for n in targets if n != METADATA)
    for name in order:
        if name not in targets:
            continue
        lv, to = current[name], targets[name]
        if to == lv.finalized:
            result.kept.append(Kept(name, lv.finalized, lv.show(), "already there"))
        elif to < lv.finalized:
            result.kept.append(Kept(name, lv.finalized, lv.show(),
                                    f"above release {release}'s {to}; a finalize never lowers a feature"))
        else:
            result.changes.append(Change(name, lv.finalized, to, lv.show(), lv.show_target(to, release)))

    listed = {c.name for c in result.changes} | {k.name for k in result.kept}
    for name in sorted(current):
        if name in listed:
            continue
        lv, mapped = current[name], mapping.get(name)
        note = ""
        if mapped is not None and mapped > lv.finalized:
            if name == KRAFT:
                note = (f"release {release} maps it to {mapped}; not raised: that makes the controller quorum "
                        f"dynamic, for good; only on its own with {DYNAMIC_QUORUM}")
            elif mapped <= lv.supported_max:
                note = f"release {release} maps it to {mapped}; raised only when named: --feature {name}={mapped}"
        result.kept.append(Kept(name, lv.finalized, lv.show(), note))
    return result


def unexpected_moves(before, after, plan_):
    """Features whose finalized level after the upgrade is not what the plan said (moved, or did not move)."""
    wanted = {c.name: c.after for c in plan_.changes}
    wrong = []
    for name, lv in sorted(before.items()):
        expect = wanted.get(name, lv.finalized)
        got = after[name].finalized if name in after else None
        if got != expect:
            wrong.append(f"{name}: expected {expect}, the cluster reports {got}")
    return wrong


# ---------------------------------------------------------------------------
# I/O around the decision, through the caller's ``run``
# ---------------------------------------------------------------------------


@dataclass
class Result:
    plan: Plan
    changed: bool
    before: dict
    after: dict
    kafka_said: str = ""

    def as_dict(self):
        return {
            "changed": self.changed,
            "plan": self.plan.lines(),
            "changes": self.plan.as_dict()["changes"],
            "features_before": {n: lv.finalized for n, lv in sorted(self.before.items())},
            "features_after": {n: lv.finalized for n, lv in sorted(self.after.items())},
            "kafka_said": self.kafka_said,
        }


class Tools:
    """``kafka-features`` on one host: ``run(argv) -> (rc, stdout, stderr)``."""

    def __init__(self, run, kafka_home, bootstrap, command_config=None):
        self.run = run
        self._mappings = {}
        self.base = [f"{kafka_home.rstrip('/')}/bin/{TOOL}", "--bootstrap-server", bootstrap]
        if command_config:
            self.base += ["--command-config", command_config]

    def call(self, *args, what):
        rc, out, err = self.run([*self.base, *args])
        if rc != 0:
            said = _kafka_words(out, err)
            if "invalid choice: 'version-mapping'" in said:
                raise FeatureError("these Kafka tools have no version-mapping (Kafka 4.0 and later have it): "
                                   "finalize once every node runs Kafka 4.0 or later")
            raise FeatureError(f"{what} failed (exit {rc}): {said}")
        return out

    def describe(self):
        return parse_describe(self.call("describe", what="kafka-features describe"))

    def mapping(self, release):
        if release not in self._mappings:
            self._mappings[release] = parse_mapping(self.call(
                "version-mapping", "--release-version", release,
                what=f"kafka-features version-mapping --release-version {release}"))
        return self._mappings[release]

    def levels(self, reported):
        numbers = {}
        mv = reported.get(METADATA)
        if mv is not None:
            for label in {mv.finalized, mv.supported_max}:
                numbers[label] = self.mapping(label)[METADATA]
        return levels(reported, numbers)


def _kafka_words(out, err):
    """Kafka's own message, without the client's connection warnings."""
    lines = [ln.strip() for ln in f"{out or ''}\n{err or ''}".splitlines()
             if ln.strip() and " WARN " not in ln and not ln.startswith("usage:") and not ln.startswith(" ")]
    return " ".join(lines)[-1500:] or "no output"


def finalize(tools, version, requested=None, dynamic_quorum=False, static=True, check=False):
    """Read the levels, plan, and (unless ``check``) raise what the plan says, then read back and prove
    that exactly the planned features moved. In check mode Kafka validates the planned command
    (``--dry-run``) and nothing changes. Raises :class:`FeatureError`."""
    release = release_of(version)
    requested = parse_feature_args(requested)
    before = tools.levels(tools.describe())
    decided = plan(before, release, tools.mapping(release), requested, dynamic_quorum, static)
    if not decided.changed:
        return Result(decided, False, before, before)
    args = ["upgrade", *decided.feature_args()]
    if check:
        said = tools.call(*args, "--dry-run", what="kafka-features upgrade --dry-run")
        return Result(decided, True, before, before, _kafka_words(said, ""))
    said = tools.call(*args, what="kafka-features upgrade")
    after = tools.levels(tools.describe())
    wrong = unexpected_moves(before, after, decided)
    if wrong:
        raise FeatureError("after the upgrade the feature levels are not what was planned: " + "; ".join(wrong))
    return Result(decided, True, before, after, _kafka_words(said, ""))
