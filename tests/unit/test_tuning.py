"""Host tuning decisions: kernel settings, heap sizing, limits, huge pages, data disks."""

import re

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import tuning
from ansible_collections.metal.kafka.plugins.module_utils.tuning import TuningError

# --- kernel settings ----------------------------------------------------------------------------


def test_defaults_validate_and_render_sorted():
    values = tuning.sysctl_values(tuning.DEFAULT_SYSCTLS)
    text = tuning.render_sysctl_conf(values, "owned by kafka-metal")
    assert text.startswith("# owned by kafka-metal\n")
    assert "vm.swappiness = 1\n" in text
    assert "net.ipv4.tcp_rmem = 4096 65536 2097152\n" in text
    keys = [line.split(" = ")[0] for line in text.splitlines()[1:]]
    assert keys == sorted(keys)


def test_overrides_merge_and_null_drops_a_default():
    values = tuning.sysctl_values(
        {"vm.swappiness": 1, "vm.dirty_ratio": 60}, {"vm.swappiness": 10, "vm.dirty_ratio": None}
    )
    assert values == {"vm.swappiness": "10"}


@pytest.mark.parametrize("value", [True, False])
def test_yaml_booleans_are_refused_with_the_fix(value):
    with pytest.raises(TuningError, match=r"vm.swappiness is the boolean .*write the number"):
        tuning.sysctl_values({"vm.swappiness": value})


@pytest.mark.parametrize("value", [1.5, "fast", "", "1,2", None and 0, [1]])
def test_non_numbers_are_refused(value):
    with pytest.raises(TuningError, match="whole number"):
        tuning.sysctl_value("vm.swappiness", value)


def test_multi_number_values_are_normalised():
    assert tuning.sysctl_value("net.ipv4.tcp_rmem", " 4096\t65536  2097152 ") == "4096 65536 2097152"


@pytest.mark.parametrize("key", ["vm/swappiness", "swappiness", "VM.Swappiness", "vm.", "../etc"])
def test_bad_keys_are_refused(key):
    with pytest.raises(TuningError, match="not a kernel setting name"):
        tuning.sysctl_values({key: 1})


def test_sysctl_path_and_comparison():
    assert tuning.sysctl_path("net.ipv4.tcp_rmem") == "/proc/sys/net/ipv4/tcp_rmem"
    assert tuning.same_sysctl("4096\t65536\t2097152", "4096 65536 2097152")
    assert not tuning.same_sysctl("60", "6")


# --- heap ---------------------------------------------------------------------------------------


# --- limits, huge pages -------------------------------------------------------------------------

LIMITS = """Limit                     Soft Limit           Hard Limit           Units
Max cpu time              unlimited            unlimited            seconds
Max processes             11842                11842                processes
Max open files            1048576              1048576              files
"""


def test_parse_limits():
    limits = tuning.parse_limits(LIMITS)
    assert limits["Max open files"] == ("1048576", "1048576")
    assert limits["Max processes"] == ("11842", "11842")


def test_limits_the_host_can_grant_pass_and_others_name_the_fix():
    limits = tuning.parse_limits(LIMITS)
    assert tuning.limit_problems(limits, 100000, 8192) == []
    problems = tuning.limit_problems(limits, 100000, 65536)
    assert len(problems) == 1
    assert "kafka_limit_nproc is 65536 but this host grants at most 11842" in problems[0]
    container = {"Max open files": ("20000", "20000")}
    assert "lower kafka_limit_nofile to 20000" in tuning.limit_problems(container, 100000, 10)[0]


def test_thp_mode():
    assert tuning.thp_mode("always [madvise] never\n") == "madvise"
    assert tuning.thp_mode("always defer [defer+madvise] madvise never") == "defer+madvise"


# --- data disks ---------------------------------------------------------------------------------


def plan(**kw):
    base = {
        "device": "/dev/disk/by-id/virtio-kmdata1",
        "exists": True,
        "probe": {},
        "partitions": [],
        "device_mounts": [],
        "path": "/var/lib/kafka/data1",
        "path_source": None,
        "path_source_is_device": False,
        "path_entries": [],
        "force_format": False,
    }
    base.update(kw)
    return tuning.plan_disk(**base)


def test_empty_disk_is_formatted_and_mounted():
    assert plan() == {"format": True, "wipe": False, "mount": True}


def test_xfs_disk_is_mounted_never_formatted_again():
    assert plan(probe={"TYPE": "xfs", "UUID": "u"}) == {"format": False, "wipe": False, "mount": True}


def test_mounted_xfs_disk_needs_nothing():
    done = plan(
        probe={"TYPE": "xfs"},
        device_mounts=["/var/lib/kafka/data1"],
        path_source="/dev/vdb",
        path_source_is_device=True,
        path_entries=[],
    )
    assert done == {"format": False, "wipe": False, "mount": False}


def test_forced_xfs_disk_is_still_not_formatted():
    assert plan(probe={"TYPE": "xfs"}, force_format=True)["format"] is False


@pytest.mark.parametrize(
    ("state", "what"),
    [
        ({"probe": {"TYPE": "ext4"}}, "a file system (ext4)"),
        ({"probe": {"PTTYPE": "gpt"}}, "a gpt partition table"),
        ({"partitions": ["vdb1"], "probe": {"PTTYPE": "dos"}}, "partitions (vdb1)"),
        ({"probe": {"TYPE": "crypto_LUKS"}}, "a LUKS header"),
        ({"probe": {"TYPE": "swap"}}, "a file system (swap)"),
    ],
)
def test_anything_else_is_refused_unless_forced(state, what):
    with pytest.raises(TuningError, match=rf"already holds {re.escape(what)}.*force_format: true.*nothing was changed"):
        plan(**state)
    assert plan(**state, force_format=True) == {"format": True, "wipe": True, "mount": True}


def test_refusals_that_force_does_not_override():
    with pytest.raises(TuningError, match="does not exist"):
        plan(exists=False, force_format=True)
    with pytest.raises(TuningError, match="is mounted at /mnt; unmount it first"):
        plan(probe={"TYPE": "ext4"}, device_mounts=["/mnt"], force_format=True)
    with pytest.raises(TuningError, match="already has /dev/sda3 mounted on it"):
        plan(path_source="/dev/sda3", force_format=True)
    with pytest.raises(TuningError, match="holds files.*would hide them"):
        plan(path_entries=["00000000000000000000.log", "meta.properties"])


def test_disk_problems_in_the_inventory():
    assert tuning.disk_problems([]) == []
    assert tuning.disk_problems([{"device": "/dev/vdb", "path": "/var/lib/kafka/data1"}]) == []
    problems = tuning.disk_problems(
        [
            {"device": "vdb", "path": "/var/lib/kafka/d"},
            {"device": "/dev/vdc", "path": "/var", "force_format": "yes"},
            {"device": "/dev/vdc", "path": "/var/lib/kafka/d", "size": 3},
            {"device": "/dev/vdd", "path": "/data", "mount_options": "nobarrier,noatime"},
            {"device": "/dev/vde", "path": "/data2", "label": "a-label-too-long"},
        ]
    )
    text = "\n".join(problems)
    assert "[0].device must be a block device under /dev" in text
    assert "[1].path must be a directory of its own" in text
    assert "[1].force_format must be true or false" in text
    assert "[2] has unknown key(s) size" in text
    assert "[2].device /dev/vdc is listed twice" in text
    assert "[2].path /var/lib/kafka/d is listed twice" in text
    assert "nobarrier turns off write barriers" in text
    assert "[4].label must be 1-12" in text
    assert tuning.disk_problems("vdb") == ["tuning_data_disks must be a list of {device, path} entries"]


def test_mount_options():
    assert tuning.validate_mount_options("noatime, nofail") == "noatime,nofail"
    assert tuning.validate_mount_options(["noatime", "nofail"]) == "noatime,nofail"
    with pytest.raises(TuningError, match="add noatime"):
        tuning.validate_mount_options("defaults")
    with pytest.raises(TuningError, match="barrier=0 turns off"):
        tuning.validate_mount_options("noatime,barrier=0")


def test_blkid_export():
    text = 'DEVNAME=/dev/vdb\nUUID=3f0c\nBLOCK_SIZE=512\nTYPE=xfs\nLABEL="kafka data"\n'
    info = tuning.parse_blkid_export(text)
    assert info["TYPE"] == "xfs" and info["UUID"] == "3f0c" and info["LABEL"] == "kafka data"


def test_fstab_gets_exactly_one_entry_for_the_path():
    fstab = "# comment\nLABEL=kmroot / ext4 rw 0 1\n/dev/vdb /var/lib/kafka/data1/ ext4 defaults 0 2\n"
    line = tuning.fstab_line("abc", "/var/lib/kafka/data1", "noatime,nofail")
    out = tuning.update_fstab(fstab, "/var/lib/kafka/data1", line)
    assert out == "# comment\nLABEL=kmroot / ext4 rw 0 1\nUUID=abc /var/lib/kafka/data1 xfs noatime,nofail 0 0\n"
    assert tuning.update_fstab(out, "/var/lib/kafka/data1", line) == out
    two = tuning.update_fstab(out, "/var/lib/kafka/data2", tuning.fstab_line("def", "/var/lib/kafka/data2", "noatime"))
    assert two.count("UUID=") == 2
