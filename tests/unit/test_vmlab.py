"""Unit tests of the VM lab's planning (no root, no QEMU): machine shape, QEMU command, guest
network, inventory, and the refusals."""

from __future__ import annotations

import json

import pytest
from kafka_metal import lab as L
from kafka_metal import lab_cli
from kafka_metal import vmlab as V


def test_defaults_keep_the_vm_lab_apart_from_the_container_lab():
    assert (V.DEFAULT_VM_BRIDGE, V.DEFAULT_VM_SUBNET) != (L.DEFAULT_BRIDGE, L.DEFAULT_SUBNET)
    lab = V.VmLab(state_dir="/nonexistent/vmlab")
    assert (lab.net.bridge, lab.net.subnet, lab.default_hosts) == ("kmvm0", "10.241.0.0/24", 1)
    assert lab.base_dir.name.startswith("vm-bookworm-minbase-")
    assert lab.base_dir != L.Lab(state_dir="/nonexistent/lab").base_dir


def test_no_test_or_tool_lab_shares_a_subnet_with_the_default_labs():
    """CI runs the VM lane beside pytest's own labs: a shared subnet fails `lab up` (it did once)."""
    import ipaddress
    import re
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    defaults = {ipaddress.ip_network(V.DEFAULT_VM_SUBNET), ipaddress.ip_network(L.DEFAULT_SUBNET)}
    assert len(defaults) == 2 and not any(a.overlaps(b) for a in defaults for b in defaults if a != b)
    found = {}
    for path in [*root.glob("tests/integration/*.py"), *root.glob("tools/*.py")]:
        for literal in re.findall(r"\b10\.\d+\.\d+\.0/\d+\b", path.read_text()):
            found.setdefault(ipaddress.ip_network(literal), set()).add(path.name)
    assert found, "no lab subnets found in tests/integration or tools"
    clashes = {str(n): files for n, files in found.items() if any(n.overlaps(d) for d in defaults)}
    assert not clashes


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (V.VmSpec(memory_mib=512), "--memory must be 1024-16384"),
        (V.VmSpec(cpus=0), "--cpus must be 1-8"),
        (V.VmSpec(disks=9), "--disks must be 0-8"),
        (V.VmSpec(disk_size="4T"), "--disk-size must look like"),
        (V.VmSpec(disk_size="100M"), "--disk-size must look like"),
        (V.VmSpec(disk_size="4 G"), "--disk-size must look like"),
        (V.VmSpec(accel="xen"), "--accel must be one of"),
    ],
)
def test_bad_machine_shapes_are_refused(spec, message):
    with pytest.raises(L.LabError, match=message):
        V.validate_spec(spec)


def test_a_running_vm_lab_keeps_its_shape():
    recorded = {"hosts": ["node1"], "vm": V.VmSpec().as_dict()}
    V.check_recorded_spec(recorded, V.VmSpec())
    V.check_recorded_spec({}, V.VmSpec(disks=3))
    with pytest.raises(L.LabError, match=r"disks 2 \(asked: 3\).*lab down --vm"):
        V.check_recorded_spec(recorded, V.VmSpec(disks=3))


def test_qemu_command_line():
    argv = V.qemu_argv(
        accel="tcg",
        spec=V.VmSpec(disks=2),
        kernel="/c/vmlinuz",
        initrd="/c/initrd.img",
        root_img="/s/hosts/node1/root.img",
        data_imgs=["/s/hosts/node1/data1.img", "/s/hosts/node1/data2.img"],
        tap="kmvm0-1",
        index=1,
        console_log="/s/console.log",
        pid_file="/s/pid",
        name="node1",
    )
    text = " ".join(argv)
    assert argv[0] == "qemu-system-x86_64"
    assert "-accel tcg,thread=single -cpu max -m 3072 -smp 2" in text
    assert f"root=LABEL={V.ROOT_LABEL}" in argv[argv.index("-append") + 1]
    assert "virtio-blk-pci,drive=data1,serial=kmdata1" in argv and "virtio-blk-pci,drive=data2,serial=kmdata2" in argv
    assert "file=/s/hosts/node1/data1.img,format=raw,if=none,id=data1,cache=none,aio=threads" in argv
    assert "tap,id=n0,ifname=kmvm0-1,script=no,downscript=no" in argv
    assert f"virtio-net-pci,netdev=n0,mac={V.mac_address(1)}" in argv
    assert "-no-reboot" not in argv  # a guest reboot must come back up
    kvm = V.qemu_argv(**{**_args(), "accel": "kvm"})
    assert kvm[kvm.index("-accel") + 1] == "kvm" and kvm[kvm.index("-cpu") + 1] == "host"


def _args():
    return {
        "accel": "tcg",
        "spec": V.VmSpec(),
        "kernel": "k",
        "initrd": "i",
        "root_img": "/s/root.img",
        "data_imgs": [],
        "tap": "t",
        "index": 2,
        "console_log": "c",
        "pid_file": "p",
        "name": "node2",
    }


def test_guest_network_and_disks():
    text = V.network_file("10.232.0.12", 24, "10.232.0.1", 2)
    assert f"MACAddress={V.mac_address(2)}" in text and "Address=10.232.0.12/24" in text
    assert "Gateway=10.232.0.1" in text
    assert V.disk_ids(2) == ["/dev/disk/by-id/virtio-kmdata1", "/dev/disk/by-id/virtio-kmdata2"]
    assert len({V.mac_address(i) for i in range(1, 51)}) == 50


def test_only_our_qemu_counts_as_a_lab_vm():
    ours = ["/usr/bin/qemu-system-x86_64", "-drive", "file=/s/hosts/node1/root.img,format=raw"]
    assert V.is_lab_qemu(ours, "/s/hosts/node1")
    assert not V.is_lab_qemu(ours, "/s/hosts/node2")
    assert not V.is_lab_qemu(["/usr/bin/python3", "file=/s/hosts/node1/root.img"], "/s/hosts/node1")


def test_inventory_lists_the_data_disks():
    access = L.Access(name="node1", address="10.232.0.11", identity_file="/k", known_hosts_file="/kh")
    text = L.render_inventory([access], {"node1": {"lab_data_disks": V.disk_ids(1)}})
    assert '          lab_data_disks: ["/dev/disk/by-id/virtio-kmdata1"]' in text


def test_vm_refusals_name_the_vm_down_command():
    with pytest.raises(L.LabError, match=r"run 'kafka-metal lab down --vm' first"):
        L.plan_up(L.NetConfig(), 1, ["node1", "node2"], [], 1, V.VmLab.down_command)


def test_cli_vm_options(tmp_path, capsys):
    rc = lab_cli.main(["up", "--vm", "--memory", "100", "--state-dir", str(tmp_path / "s")])
    assert rc == 1
    assert capsys.readouterr().err == "kafka-metal lab: error: --memory must be 1024-16384 MiB, got 100\n"
    assert lab_cli.main(["status", "--vm", "--json", "--state-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_down_and_status_use_the_recorded_shape(tmp_path):
    (tmp_path / "lab.json").write_text(json.dumps({"hosts": ["node1"], "vm": {"disks": 3, "memory_mib": 2048}}))
    spec = V.VmLab.recorded_spec(str(tmp_path))
    assert (spec["disks"], spec["memory_mib"], spec["cpus"]) == (3, 2048, 2)
