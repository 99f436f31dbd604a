"""Finalizing an upgrade (module_utils/features.py): which feature levels move, for every pair of current level
and target release the supported Kafka releases give, on the text Kafka's own tools print.

The files under data/features/<version>/ are the real output of that version's ``kafka-features describe`` and
``kafka-features version-mapping --release-version R``. :class:`FakeFeatureTool` answers the same commands from
them and keeps finalized levels, so :func:`features.finalize` (the I/O the module and the command line share) runs
here as it does on a host.
"""

import itertools
import re
from pathlib import Path

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import features

DATA = Path(__file__).parent / "data" / "features"
TOOL_VERSIONS = sorted(p.name for p in DATA.iterdir() if p.is_dir())
RELEASES = ["3.9", "4.0", "4.1"]
# metadata.version at the last IV of each supported release
METADATA_AT = {"3.9": 21, "4.0": 25, "4.1": 27}


class FakeFeatureTool:
    """kafka-features of one Kafka version against a cluster whose finalized levels it keeps."""

    def __init__(self, version, finalized, moves_also=None, refuse=None):
        self.dir = DATA / version
        reported = features.parse_describe(next(self.dir.glob("describe-*.txt")).read_text())
        self.supported = {n: (r.supported_min, r.supported_max) for n, r in reported.items()}
        self.names = {}
        for f in self.dir.glob("mapping-*-IV*.txt"):
            label = f.name[len("mapping-"):-len(".txt")]
            self.names[features.parse_mapping(f.read_text())[features.METADATA]] = label
        self.finalized = dict(finalized)
        self.calls = []
        self.moves_also = moves_also or {}
        self.refuse = refuse

    def max_level(self, name):
        top = self.supported[name][1]
        if name == features.METADATA:
            return next(n for n, label in self.names.items() if label == top)
        return int(top)

    def run(self, argv):
        assert argv[0].endswith("/bin/kafka-features.sh") and argv[1] == "--bootstrap-server"
        args = argv[3:]
        if args[:1] == ["--command-config"]:
            args = args[2:]
        self.calls.append(args)
        if args == ["describe"]:
            lines = []
            for name, (low, high) in sorted(self.supported.items()):
                level = self.finalized.get(name, 0)
                shown = self.names[level] if name == features.METADATA else str(level)
                lines.append(f"Feature: {name}\tSupportedMinVersion: {low}\tSupportedMaxVersion: {high}\t"
                             f"FinalizedVersionLevel: {shown}\tEpoch: 7")
            return 0, "\n".join(lines) + "\n", ""
        if args[0] == "version-mapping":
            f = self.dir / f"mapping-{args[2]}.txt"
            if not f.exists():
                return 1, f"Unknown release version '{args[2]}'. Supported versions are: 3.3-IV3 to x\n", ""
            return 0, f.read_text(), ""
        if args[0] == "upgrade":
            wanted = dict(a.split("=") for a in args[1:] if "=" in a)
            if self.refuse:
                return 1, f"{self.refuse}\n1 out of 1 operation(s) failed.\n", ""
            for name, level in wanted.items():
                level = int(level)
                if name not in self.supported or level > self.max_level(name):
                    return 1, f"Can not upgrade {name} to {level}. Invalid update version\n", ""
                if level < self.finalized.get(name, 0):
                    return 1, f"Can not upgrade {name} to {level}. Can't downgrade the version\n", ""
            if "--dry-run" in args:
                return 0, "".join(f"{n} can be upgraded to {v}.\n" for n, v in wanted.items()), ""
            for name, level in wanted.items():
                self.finalized[name] = int(level)
            self.finalized.update(self.moves_also)
            return 0, "".join(f"{n} was upgraded to {v}.\n" for n, v in wanted.items()), ""
        raise AssertionError(f"unexpected command {argv}")

    def tools(self):
        return features.Tools(self.run, "/opt/kafka/current", "b1:9092", "/etc/kafka/admin.properties")

    def upgrades(self):
        return [c for c in self.calls if c[0] == "upgrade"]


# ---------------------------------------------------------------------------------------------
# What Kafka's tools print
# ---------------------------------------------------------------------------------------------


def test_describe_of_a_cluster_upgraded_from_3_9_before_its_finalize():
    got = features.parse_describe((DATA / "4.1.1" / "describe-at-3.9.txt").read_text())
    assert got["metadata.version"] == features.Reported("metadata.version", "3.3-IV3", "4.1-IV1", "3.9-IV0")
    assert got["kraft.version"].finalized == "0"
    assert got["transaction.version"].supported_max == "2"
    assert "streams.version" not in got


@pytest.mark.parametrize("version", TOOL_VERSIONS)
def test_version_mapping_of_each_release(version):
    for release in RELEASES:
        f = DATA / version / f"mapping-{release}.txt"
        if not f.exists():
            continue
        got = features.parse_mapping(f.read_text())
        assert got["metadata.version"] == METADATA_AT[release]
        assert got["kraft.version"] == 1  # every release from 3.9 on maps kraft.version to 1: never taken from here


def test_describe_with_nothing_parseable_names_the_likely_cause():
    with pytest.raises(features.FeatureError, match="admin.properties"):
        features.parse_describe("Error while executing\n")


def test_a_feature_never_finalized_counts_as_level_0():
    text = "Feature: group.version\tSupportedMinVersion: 0\tSupportedMaxVersion: 1\tFinalizedVersionLevel: -\tEpoch: 1"
    assert features.parse_describe(text)["group.version"].finalized == "0"


@pytest.mark.parametrize("given, release", [("4.1.1", "4.1"), ("4.1", "4.1"), ("3.9.0", "3.9"), (" 4.0.2 ", "4.0")])
def test_release_of(given, release):
    assert features.release_of(given) == release


@pytest.mark.parametrize("given", ["4", "4.x", "v4.1.1", "4.1.1.1", ""])
def test_release_of_refuses_what_is_not_a_version(given):
    with pytest.raises(features.FeatureError, match="not a Kafka version like 4.1.1"):
        features.release_of(given)


def test_feature_arguments():
    assert features.parse_feature_args(["group.version=1", "transaction.version=2"]) == {
        "group.version": 1, "transaction.version": 2}
    assert features.parse_feature_args({"group.version": 1}) == {"group.version": 1}
    assert features.parse_feature_args(None) == {}


@pytest.mark.parametrize("item", ["group.version", "group.version=one", "group.version=-1", "=1", "Group.version=1"])
def test_feature_arguments_that_are_unclear(item):
    with pytest.raises(features.FeatureError, match="write NAME=LEVEL"):
        features.parse_feature_args([item])


def test_a_feature_named_twice_with_two_levels():
    with pytest.raises(features.FeatureError, match="named twice"):
        features.parse_feature_args(["group.version=1", "group.version=0"])


def test_static_voters_from_the_configuration():
    assert features.static_voters({"controller.quorum.voters": "1@c1:9093,2@c2:9093"})
    assert not features.static_voters({"controller.quorum.bootstrap.servers": "c1:9093"})
    assert not features.static_voters({"controller.quorum.voters": " "})


# ---------------------------------------------------------------------------------------------
# The plan, for every pair of current level and target release
# ---------------------------------------------------------------------------------------------

# nodes of each Kafka version, at every level they can be at, finalized to every release
PAIRS = [(v, cur, rel, kraft) for v, cur, rel, kraft in itertools.product(TOOL_VERSIONS, RELEASES, RELEASES, (0, 1))
         if METADATA_AT[cur] <= FakeFeatureTool(v, {}).max_level("metadata.version")]


@pytest.mark.parametrize("version, current, release, kraft", PAIRS)
def test_finalize_raises_metadata_version_and_nothing_else(version, current, release, kraft):
    tool = FakeFeatureTool(version, {"metadata.version": METADATA_AT[current], "kraft.version": kraft})
    before = dict(tool.finalized)
    at_most = tool.max_level("metadata.version")
    target_known = (DATA / version / f"mapping-{release}.txt").exists()
    if not target_known:
        with pytest.raises(features.FeatureError, match=f"Unknown release version '{release}'"):
            features.finalize(tool.tools(), release)
        assert tool.finalized == before and not tool.upgrades()
        return
    if METADATA_AT[release] > at_most:
        with pytest.raises(features.FeatureError, match="above what the nodes support") as exc:
            features.finalize(tool.tools(), f"{release}.1")
        assert "nothing changed" in str(exc.value)
        assert tool.finalized == before and not tool.upgrades()
        return

    result = features.finalize(tool.tools(), f"{release}.1")
    expected = before | {"metadata.version": max(METADATA_AT[release], METADATA_AT[current])}
    assert tool.finalized == expected
    assert tool.finalized["kraft.version"] == kraft  # never raised implicitly
    moved = METADATA_AT[release] > METADATA_AT[current]
    assert result.changed == moved
    if moved:
        assert tool.upgrades() == [["upgrade", "--feature", f"metadata.version={METADATA_AT[release]}"]]
        assert [c.name for c in result.plan.changes] == ["metadata.version"]
        assert result.after["metadata.version"].finalized == METADATA_AT[release]
    else:
        assert not tool.upgrades()
        assert "nothing to do" in "\n".join(result.plan.lines())
    # a second finalize changes nothing and sends no upgrade
    tool.calls.clear()
    again = features.finalize(tool.tools(), f"{release}.1")
    assert not again.changed and not tool.upgrades()
    assert tool.finalized == expected


def test_the_plan_says_what_moves_and_what_does_not():
    tool = FakeFeatureTool("4.1.1", {"metadata.version": 21})
    result = features.finalize(tool.tools(), "4.1.1", check=True)
    lines = "\n".join(result.plan.lines())
    assert re.search(r"raise metadata\.version +3\.9-IV0 \(21\) -> 4\.1-IV1 \(27\)", lines), lines
    assert re.search(r"keep  kraft\.version +0 +\(release 4\.1 maps it to 1; not raised: that makes the controller "
                     r"quorum dynamic, for good; only on its own with --dynamic-quorum\)", lines), lines
    assert re.search(r"keep  group\.version +0 +\(release 4\.1 maps it to 1; raised only when named: "
                     r"--feature group\.version=1\)", lines), lines
    assert re.search(r"keep  share\.version +0$", lines, re.M), lines  # the mapping leaves it at 0: no note
    assert result.plan.as_dict()["changes"] == [{"feature": "metadata.version", "before": 21, "after": 27}]


def test_check_mode_asks_kafka_and_changes_nothing():
    tool = FakeFeatureTool("4.1.1", {"metadata.version": 21})
    result = features.finalize(tool.tools(), "4.1.1", check=True)
    assert result.changed
    assert tool.upgrades() == [["upgrade", "--feature", "metadata.version=27", "--dry-run"]]
    assert result.kafka_said == "metadata.version can be upgraded to 27."
    assert tool.finalized == {"metadata.version": 21}


def test_named_features_move_with_metadata_version():
    tool = FakeFeatureTool("4.1.1", {"metadata.version": 21})
    result = features.finalize(tool.tools(), "4.1.1", ["group.version=1", "transaction.version=2"])
    assert tool.upgrades() == [["upgrade", "--feature", "metadata.version=27", "--feature", "group.version=1",
                                "--feature", "transaction.version=2"]]
    assert {c.name for c in result.plan.changes} == {"metadata.version", "group.version", "transaction.version"}
    assert tool.finalized.get("kraft.version", 0) == 0


def test_a_named_feature_alone_after_the_finalize():
    tool = FakeFeatureTool("4.1.1", {"metadata.version": 27})
    result = features.finalize(tool.tools(), "4.1.1", {"group.version": 1})
    assert [c.name for c in result.plan.changes] == ["group.version"]
    assert tool.finalized["group.version"] == 1
    again = features.finalize(tool.tools(), "4.1.1", {"group.version": 1})
    assert not again.changed
    assert any(k.name == "group.version" and k.note == "already there" for k in again.plan.kept)


@pytest.mark.parametrize("asked, message", [
    (["group.version=2"], r"group.version=2 is above the highest level the nodes support \(1\)"),
    (["nosuch.version=1"], r"nosuch.version is not a feature the nodes know \(they know: eligible"),
    (["metadata.version=27"], "metadata.version follows the target version"),
    (["kraft.version=1"], "kraft.version is not raised with --feature.*--dynamic-quorum"),
])
def test_named_features_that_are_refused(asked, message):
    tool = FakeFeatureTool("4.1.1", {"metadata.version": 21})
    with pytest.raises(features.FeatureError, match=message):
        features.finalize(tool.tools(), "4.1.1", asked)
    assert not tool.upgrades() and tool.finalized == {"metadata.version": 21}


def test_a_named_feature_is_never_lowered():
    tool = FakeFeatureTool("4.1.1", {"metadata.version": 27, "transaction.version": 2})
    with pytest.raises(features.FeatureError, match="below its finalized level 2: a finalize never lowers"):
        features.finalize(tool.tools(), "4.1.1", ["transaction.version=1"])


def test_every_problem_is_listed_at_once():
    tool = FakeFeatureTool("4.1.1", {"metadata.version": 21})
    with pytest.raises(features.FeatureError) as exc:
        features.finalize(tool.tools(), "4.1.1", ["group.version=5", "kraft.version=1"])
    assert str(exc.value).count("\n- ") == 2


def test_dynamic_quorum_is_its_own_explicit_step_with_a_warning():
    tool = FakeFeatureTool("4.1.1", {"metadata.version": 27, "kraft.version": 0})
    result = features.finalize(tool.tools(), "4.1.1", dynamic_quorum=True, static=True)
    assert tool.upgrades() == [["upgrade", "--feature", "kraft.version=1"]]
    assert tool.finalized["kraft.version"] == 1
    (warning,) = result.plan.warnings
    assert "cannot be undone" in warning and "still lists controller.quorum.voters" in warning
    assert "WARNING: kraft.version 0 -> 1" in "\n".join(result.plan.lines())
    again = features.finalize(tool.tools(), "4.1.1", dynamic_quorum=True)
    assert not again.changed and not again.plan.warnings


def test_dynamic_quorum_without_static_voters_warns_without_the_configuration_line():
    tool = FakeFeatureTool("4.1.1", {"metadata.version": 21, "kraft.version": 0})
    result = features.finalize(tool.tools(), "4.1.1", dynamic_quorum=True, static=False, check=True)
    assert [c.name for c in result.plan.changes] == ["metadata.version", "kraft.version"]
    assert "controller.quorum.voters" not in result.plan.warnings[0]


def test_kafka_refusing_the_upgrade_is_reported_in_its_words():
    tool = FakeFeatureTool("4.1.1", {"metadata.version": 21},
                           refuse="Can not upgrade metadata.version to 27. Local controller 1 only supports 3.9")
    with pytest.raises(features.FeatureError, match="kafka-features upgrade failed .exit 1.: Can not upgrade "
                                                    "metadata.version to 27. Local controller 1 only supports 3.9"):
        features.finalize(tool.tools(), "4.1.1")


def test_a_feature_that_moved_without_being_asked_is_an_error():
    # what `--release-version 4.1` does: kraft.version comes along
    tool = FakeFeatureTool("4.1.1", {"metadata.version": 21, "kraft.version": 0}, moves_also={"kraft.version": 1})
    with pytest.raises(features.FeatureError, match="kraft.version: expected 0, the cluster reports 1"):
        features.finalize(tool.tools(), "4.1.1")


def test_tools_without_version_mapping_are_named():
    def run(argv):
        if "describe" in argv:
            return 0, (DATA / "4.1.1" / "describe-at-3.9.txt").read_text(), ""
        return 1, "", "kafka-features: error: invalid choice: 'version-mapping' (choose from 'describe')"

    with pytest.raises(features.FeatureError, match="no version-mapping .Kafka 4.0 and later"):
        features.finalize(features.Tools(run, "/opt/kafka/current", "b:9092"), "3.9.1")


def test_zookeeper_mode_has_no_metadata_version():
    current = {"group.version": features.Level(0, 1)}
    with pytest.raises(features.FeatureError, match="inter.broker.protocol.version"):
        features.plan(current, "3.9", {"metadata.version": 21})


def test_connection_warnings_are_left_out_of_kafka_words():
    out = ("[2026-12-04 18:53:20,079] WARN [AdminClient clientId=adminclient-1] Connection to node -1 could not be "
           "established. (org.apache.kafka.clients.NetworkClient)\nUnknown release version '5.0'.\n")
    assert features._kafka_words(out, "") == "Unknown release version '5.0'."
