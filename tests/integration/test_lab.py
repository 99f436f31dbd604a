"""The container lab for real: two systemd-nspawn hosts up, used over ssh, up again, down, nothing left.

Needs root, debootstrap, systemd-container and iptables. Uses its own state dir, bridge (kmtest0),
subnet (10.232.0.0/24) and netns prefix (kmtest-) so it does not touch a lab someone has up with the
defaults. The base root file system is shared with the default cache (built on first use, ~1 minute).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import urllib.parse
from pathlib import Path

import pytest
from kafka_metal import lab as L
from kafka_metal import lab_cli

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
    pytest.mark.skipif(bool(L.missing_tools()), reason="lab tools missing: " + ", ".join(L.missing_tools())),
]

BRIDGE, SUBNET, PREFIX = "kmtest0", "10.232.0.0/24", "kmtest-"


def sh(*argv: str) -> str:
    return subprocess.run(argv, check=True, capture_output=True, text=True, env=L.ENV).stdout


@pytest.fixture(scope="module")
def state_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("kmlab")


@pytest.fixture(scope="module")
def lab(state_dir):
    lab = L.Lab(state_dir=state_dir, bridge=BRIDGE, subnet=SUBNET, netns_prefix=PREFIX)
    lab.down(progress=lambda m: None)  # a previous interrupted run
    progress: list[str] = []
    try:
        lab.up(2, progress=progress.append)
        lab.progress = progress
        yield lab
    finally:
        lab.down(progress=lambda m: None)


def on(lab: L.Lab, host: str, command: str, check: bool = True) -> subprocess.CompletedProcess:
    proc = subprocess.run(
        lab.ssh_argv(host, [command], batch=True), capture_output=True, text=True, timeout=120, env=L.ENV
    )
    if check:
        assert proc.returncode == 0, f"{host}: {command}: {proc.stderr}"
    return proc


def test_up_reports_both_hosts(lab):
    assert any(m.startswith("node1: up at 10.232.0.11") for m in lab.progress), lab.progress
    assert any(m.startswith("node2: up at 10.232.0.12") for m in lab.progress), lab.progress
    assert [(s.name, s.address, s.running, s.ssh) for s in lab.status()] == [
        ("node1", "10.232.0.11", True, True),
        ("node2", "10.232.0.12", True, True),
    ]


@pytest.mark.parametrize("host", ["node1", "node2"])
def test_host_runs_systemd_sshd_and_python(lab, host):
    out = on(
        lab, host, "systemctl is-system-running; hostname; python3 --version; cat /proc/1/comm; systemctl is-active ssh"
    ).stdout.split()
    assert out == ["running", host, "Python", "3.11.2", "systemd", "active"]


def test_each_host_has_its_own_identity(lab):
    ids = {h: on(lab, h, "cat /etc/machine-id /etc/ssh/ssh_host_ed25519_key.pub").stdout for h in ("node1", "node2")}
    assert ids["node1"] != ids["node2"]
    base_keys = list((lab.base_dir / "etc" / "ssh").glob("ssh_host_*"))
    assert base_keys == [], "the shared base must not carry host keys"
    known = lab.known_hosts_file.read_text()
    for h in ("node1", "node2"):
        assert ids[h].split("\n", 1)[1].split()[1] in known


@pytest.mark.parametrize(
    ("host", "other", "address"), [("node1", "node2", "10.232.0.12"), ("node2", "node1", "10.232.0.11")]
)
def test_hosts_resolve_and_reach_each_other(lab, host, other, address):
    assert on(lab, host, f"getent hosts {other}").stdout.split() == [address, other]
    banner = on(lab, host, f"timeout 5 bash -c 'exec 3<>/dev/tcp/{other}/22; head -c 4 <&3'").stdout
    assert banner == "SSH-"


def test_apt_reaches_the_mirror_through_nat(lab):
    proc = on(lab, "node1", "apt-get update", check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # the hosts use the mirror this machine's apt is set up with
    assert urllib.parse.urlsplit(L.apt_mirrors()[0]).hostname in proc.stdout


def test_ansible_uses_the_inventory(lab):
    venv_ansible = Path(sys.executable).parent / "ansible"
    exe = str(venv_ansible) if venv_ansible.exists() else shutil.which("ansible")
    if not exe:
        pytest.skip("ansible not installed")
    proc = subprocess.run(
        [exe, "-i", str(lab.inventory_file), "lab", "-m", "ansible.builtin.ping", "-o"],
        capture_output=True,
        text=True,
        timeout=120,
        env={**L.ENV, "LC_ALL": "C.UTF-8", "ANSIBLE_HOST_KEY_CHECKING": "True"},
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.count("SUCCESS") == 2


def test_json_shape(lab, state_dir):
    assert [s.access.as_dict() for s in lab.status()][0] == {
        "name": "node1",
        "address": "10.232.0.11",
        "user": "root",
        "port": 22,
        "identity_file": str(state_dir / "id_ed25519"),
        "known_hosts_file": str(state_dir / "known_hosts"),
    }


def test_up_again_is_harmless_and_shrinking_is_refused(lab):
    pids = {s.name: (lab.host_dir(s.name) / "pid").read_text() for s in lab.status()}
    progress: list[str] = []
    again = L.Lab(state_dir=lab.state_dir)  # network settings come from the recorded lab
    accesses = again.up(2, progress=progress.append)
    assert [a.name for a in accesses] == ["node1", "node2"]
    assert "node1: already running, left alone" in progress
    assert {s.name: (lab.host_dir(s.name) / "pid").read_text() for s in lab.status()} == pids
    with pytest.raises(L.LabError, match=r"already has 2 hosts .* run 'kafka-metal lab down' first"):
        again.up(1)
    assert on(lab, "node1", "systemctl is-system-running").stdout.strip() == "running"


def test_cli_status_json(lab, state_dir, capsys):
    assert lab_cli.main(["status", "--json", "--state-dir", str(state_dir)]) == 0
    rows = json.loads(capsys.readouterr().out)
    assert [(r["name"], r["running"], r["ssh"]) for r in rows] == [("node1", True, True), ("node2", True, True)]


def leftovers(lab: L.Lab) -> dict[str, object]:
    mountinfo = Path("/proc/self/mountinfo").read_text()
    mounts = L.mounts_under(L.parse_mountpoints(mountinfo), str(lab.state_dir))
    links = L.parse_ip_links(sh("ip", "-j", "link", "show"))
    return {
        "nspawn": L.lab_nspawn_pids(PREFIX),
        "mounts": mounts,
        "netns": [n for n in L.parse_netns_list(sh("ip", "netns", "list")) if n.startswith(PREFIX)],
        "links": [n for n in links if n.startswith(BRIDGE)],
        "nat": [r for r in sh("iptables", "-w", "-t", "nat", "-S").splitlines() if SUBNET in r],
        "forward": [r for r in sh("iptables", "-w", "-S").splitlines() if BRIDGE in r],
        "host dirs": (lab.state_dir / "hosts").exists(),
        "cgroups": [
            cg for h in ("node1", "node2") for cg in L.host_cgroups(mountinfo, f"{PREFIX}{h}") if Path(cg).exists()
        ],
    }


def test_down_leaves_nothing(lab):
    before = leftovers(lab)
    assert len(before["nspawn"]) == 2 and len(before["netns"]) == 2 and before["nat"] and before["cgroups"], before
    lab.down(progress=lambda m: None)
    assert leftovers(lab) == {
        "nspawn": {},
        "mounts": [],
        "netns": [],
        "links": [],
        "nat": [],
        "forward": [],
        "host dirs": False,
        "cgroups": [],
    }
    assert not lab.inventory_file.exists()
    assert (lab.base_dir / "etc" / "os-release").exists(), "down keeps the cached base"
    lab.down(progress=lambda m: None)  # harmless when nothing is up
    assert lab.status() == []
