"""Unit tests of the container lab's planning logic (no root, no containers)."""

from __future__ import annotations

import json
import shlex
import shutil

import pytest
from kafka_metal import lab as L
from kafka_metal import lab_cli, lab_system
from kafka_metal.tables import render_table

NET = L.NetConfig()
TEST_NET = L.NetConfig(bridge="kmtest0", subnet="10.232.0.0/24", netns_prefix="kmtest-")


# --- names and addresses ------------------------------------------------------------------------


def test_default_network():
    assert (NET.bridge, NET.subnet, NET.netns_prefix, NET.gateway) == (
        "kmlab0",
        "10.231.0.0/24",
        "kmlab-",
        "10.231.0.1",
    )


@pytest.mark.parametrize(
    ("net", "index", "name", "address", "netns", "veth"),
    [
        (NET, 1, "node1", "10.231.0.11", "kmlab-node1", "kmlab0-1"),
        (NET, 6, "node6", "10.231.0.16", "kmlab-node6", "kmlab0-6"),
        (NET, 50, "node50", "10.231.0.60", "kmlab-node50", "kmlab0-50"),
        (TEST_NET, 2, "node2", "10.232.0.12", "kmtest-node2", "kmtest0-2"),
    ],
)
def test_plan_host(net, index, name, address, netns, veth):
    h = L.plan_host(net, index)
    assert (h.name, h.address, h.netns, h.veth, h.machine) == (name, address, netns, veth, netns)


def test_veth_names_fit_the_kernel_limit_for_the_longest_bridge():
    net = L.NetConfig(bridge="b" * 12)
    L.validate_net(net)
    assert len(L.plan_host(net, L.MAX_HOSTS).veth) <= 15


def test_host_index_round_trip():
    assert [L.host_index(L.host_name(i)) for i in (1, 9, 50)] == [1, 9, 50]
    assert L.host_index("node0") is None
    assert L.host_index("kafka1") is None
    assert L.host_index("node01") is None


def test_host_outside_subnet_is_refused():
    with pytest.raises(L.LabError, match="does not fit in subnet"):
        L.host_address(L.NetConfig(subnet="10.9.0.0/28"), 10)


@pytest.mark.parametrize(
    ("net", "message"),
    [
        (L.NetConfig(bridge="a-very-long-bridge"), "bridge name 'a-very-long-bridge' must be 1-12"),
        (L.NetConfig(bridge="br;0"), "bridge name 'br;0'"),
        (L.NetConfig(netns_prefix="KM_"), "netns prefix 'KM_'"),
        (L.NetConfig(subnet="10.231.0.1/24"), "is not an IPv4 network like 10.231.0.0/24"),
        (L.NetConfig(subnet="nonsense"), "is not an IPv4 network"),
        (L.NetConfig(subnet="8.8.8.0/24"), "8.8.8.0/24 is not a private range"),
        (L.NetConfig(subnet="10.231.0.0/27"), "too small: use a /26 or larger"),
    ],
)
def test_validate_net_refusals(net, message):
    with pytest.raises(L.LabError, match=message.replace("(", r"\(").replace(".", r"\.")):
        L.validate_net(net)


def test_validate_net_accepts_defaults_and_test_net():
    L.validate_net(NET)
    L.validate_net(TEST_NET)
    L.validate_net(L.NetConfig(subnet="192.168.77.0/26"))


# --- deciding what to start or refuse -----------------------------------------------------------


@pytest.mark.parametrize(
    ("hosts", "message"),
    [
        (0, "--hosts must be between 1 and 50, got 0"),
        (-2, "--hosts must be between 1 and 50, got -2"),
        (51, "--hosts must be between 1 and 50, got 51"),
        ("3", "--hosts must be a whole number, got '3'"),
        (True, "--hosts must be a whole number, got True"),
    ],
)
def test_validate_hosts_refusals(hosts, message):
    with pytest.raises(L.LabError) as exc:
        L.validate_hosts(hosts)
    assert str(exc.value) == message


def test_plan_up_fresh_lab():
    plan = L.plan_up(NET, 6, existing=[], running=[])
    assert [h.name for h in plan.hosts] == [f"node{i}" for i in range(1, 7)]
    assert plan.start == [h.name for h in plan.hosts]
    assert plan.running == []


def test_plan_up_default_size_is_current_lab_or_three():
    assert len(L.plan_up(NET, None, [], []).hosts) == L.DEFAULT_HOSTS == 3
    assert len(L.plan_up(NET, None, ["node1", "node2", "node3", "node4", "node5"], []).hosts) == 5


def test_plan_up_twice_leaves_running_hosts_alone():
    plan = L.plan_up(NET, 2, existing=["node1", "node2"], running=["node1", "node2"])
    assert plan.start == []
    assert plan.running == ["node1", "node2"]


def test_plan_up_restarts_stopped_and_adds_new_hosts():
    plan = L.plan_up(NET, 4, existing=["node1", "node2"], running=["node1"])
    assert plan.running == ["node1"]
    assert plan.start == ["node2", "node3", "node4"]


def test_plan_up_refuses_to_shrink():
    with pytest.raises(L.LabError) as exc:
        L.plan_up(NET, 2, existing=["node1", "node2", "node3", "node4"], running=["node1"])
    assert str(exc.value) == (
        "the lab already has 4 hosts (node1..node4) but --hosts 2 was asked for: "
        "run 'kafka-metal lab down' first, or ask for --hosts 4 or more"
    )


def test_plan_up_ignores_foreign_names():
    plan = L.plan_up(NET, 1, existing=["lost+found", "node1"], running=[])
    assert plan.start == ["node1"]


def test_check_recorded():
    base = "/var/cache/kafka-metal/x"
    recorded = {
        "bridge": "kmlab0",
        "subnet": "10.231.0.0/24",
        "netns_prefix": "kmlab-",
        "base": base,
        "hosts": ["node1"],
    }
    L.check_recorded(recorded, NET, base)  # same lab: fine
    L.check_recorded(None, TEST_NET, base)  # no lab: fine
    L.check_recorded({**recorded, "hosts": []}, TEST_NET, base)  # lab without hosts: fine
    with pytest.raises(L.LabError) as exc:
        L.check_recorded(recorded, L.NetConfig(bridge="kmother0"), base)
    assert str(exc.value) == ("the lab is up with bridge kmlab0 (asked: kmother0): run 'kafka-metal lab down' first")
    with pytest.raises(L.LabError, match="base /var/cache/kafka-metal/x \\(asked: /other\\)"):
        L.check_recorded(recorded, NET, "/other")


# --- tools ---------------------------------------------------------------------------------------


def test_missing_tools_message_names_the_packages():
    have = {"ip", "ssh", "ssh-keygen", "mount", "umount"}
    missing = L.missing_tools(which=lambda t: f"/usr/bin/{t}" if t in have else None)
    assert missing == ["debootstrap", "systemd-nspawn", "iptables"]
    assert L.missing_tools_message(missing) == (
        "missing command(s): debootstrap, systemd-nspawn, iptables; "
        "install them with: apt-get install -y debootstrap iptables systemd-container"
    )


def test_missing_tools_none():
    assert L.missing_tools(which=lambda t: "/bin/" + t) == []


# --- the base root file system ------------------------------------------------------------------


def test_base_key_is_keyed_by_the_include_list():
    key = L.base_key()
    assert key.startswith("bookworm-minbase-")
    assert key == L.base_key(include=list(reversed(L.INCLUDE)))  # order does not matter
    assert key != L.base_key(include=[*L.INCLUDE, "curl"])
    assert key != L.base_key(recipe=L.BASE_RECIPE + 1)


def test_debootstrap_argv():
    assert L.debootstrap_argv("/cache/.build-x", mirror="http://mirror.example/debian") == [
        "debootstrap",
        "--variant=minbase",
        "--include=systemd-sysv,openssh-server,python3,iproute2,sudo,procps,ca-certificates",
        "bookworm",
        "/cache/.build-x",
        "http://mirror.example/debian",
    ]


def test_mirrors_come_from_the_machines_apt_sources(tmp_path, monkeypatch):
    monkeypatch.delenv(L.MIRROR_ENV, raising=False)
    monkeypatch.delenv(L.SECURITY_MIRROR_ENV, raising=False)
    d = tmp_path / "apt" / "sources.list.d"
    d.mkdir(parents=True)
    (d / "other.list").write_text("deb [arch=amd64] https://vendor.example/apt stable main\n")
    (d / "debian.sources").write_text(
        "Types: deb\n# a comment\nURIs: http://mirror.example/debian/\nSuites: bookworm bookworm-updates\n"
        "Components: main\n\nTypes: deb\nURIs: http://security.example/debian-security\n"
        "Suites: bookworm-security\nComponents: main\n")
    assert L.apt_mirrors(etc=tmp_path) == ("http://mirror.example/debian", "http://security.example/debian-security")
    assert L.apt_sources("http://m.example/d", "http://s.example/s") == (
        "deb http://m.example/d bookworm main\ndeb http://m.example/d bookworm-updates main\n"
        "deb http://s.example/s bookworm-security main\n")
    (d / "debian.sources").unlink()
    (tmp_path / "apt" / "sources.list").write_text("# old style\ndeb http://one.example/debian bookworm main\n")
    assert L.apt_mirrors(etc=tmp_path) == ("http://one.example/debian", "http://one.example/debian")
    monkeypatch.setenv(L.MIRROR_ENV, "http://chosen.example/debian")
    assert L.apt_mirrors(etc=tmp_path)[0] == "http://chosen.example/debian"
    monkeypatch.delenv(L.MIRROR_ENV)
    (tmp_path / "apt" / "sources.list").unlink()
    with pytest.raises(L.LabError, match="no Debian bookworm mirror in this machine's apt sources"):
        L.apt_mirrors(etc=tmp_path)


# --- files written into the hosts and the state dir ---------------------------------------------


def test_hosts_file_lists_every_host_and_no_loopback_alias():
    text = L.hosts_file(L.plan_hosts(NET, 3))
    assert "10.231.0.11\tnode1\n10.231.0.12\tnode2\n10.231.0.13\tnode3\n" in text
    assert "127.0.0.1\tlocalhost\n" in text
    assert "127.0.1.1" not in text  # a host's own name must resolve to its lab address (Kafka listeners)


def test_known_hosts_lines():
    h = L.plan_host(NET, 2)
    lines = L.known_hosts_lines(h, ["ssh-ed25519 AAAAC3Nz root@builder\n", "ssh-rsa AAAAB3 x\n", "garbage"])
    assert lines == ["10.231.0.12,node2 ssh-ed25519 AAAAC3Nz", "10.231.0.12,node2 ssh-rsa AAAAB3"]


def _accesses(state="/var/lib/kafka-metal/lab", n=2):
    return [
        L.Access(
            name=h.name, address=h.address, identity_file=f"{state}/id_ed25519", known_hosts_file=f"{state}/known_hosts"
        )
        for h in L.plan_hosts(NET, n)
    ]


def test_access_json_shape():
    assert _accesses(n=1)[0].as_dict() == {
        "name": "node1",
        "address": "10.231.0.11",
        "user": "root",
        "port": 22,
        "identity_file": "/var/lib/kafka-metal/lab/id_ed25519",
        "known_hosts_file": "/var/lib/kafka-metal/lab/known_hosts",
    }


def test_inventory_renders_group_lab():
    yaml = pytest.importorskip("yaml")
    inv = yaml.safe_load(L.render_inventory(_accesses(n=2)))
    hosts = inv["all"]["children"]["lab"]["hosts"]
    assert list(hosts) == ["node1", "node2"]
    node2 = hosts["node2"]
    assert node2["ansible_host"] == "10.231.0.12"
    assert node2["ansible_user"] == "root"
    assert node2["ansible_port"] == 22
    assert node2["ansible_ssh_private_key_file"] == "/var/lib/kafka-metal/lab/id_ed25519"
    assert node2["ansible_python_interpreter"] == "/usr/bin/python3"
    args = shlex.split(node2["ansible_ssh_common_args"])
    assert "UserKnownHostsFile=/var/lib/kafka-metal/lab/known_hosts" in args
    assert "StrictHostKeyChecking=yes" in args


def test_inventory_quotes_awkward_paths():
    yaml = pytest.importorskip("yaml")
    inv = yaml.safe_load(L.render_inventory(_accesses(state="/tmp/it's: #here", n=1)))
    node1 = inv["all"]["children"]["lab"]["hosts"]["node1"]
    assert node1["ansible_ssh_private_key_file"] == "/tmp/it's: #here/id_ed25519"
    assert "UserKnownHostsFile=/tmp/it's: #here/known_hosts" in shlex.split(node1["ansible_ssh_common_args"])


def test_inventory_without_hosts_is_valid_yaml():
    yaml = pytest.importorskip("yaml")
    assert yaml.safe_load(L.render_inventory([]))["all"]["children"]["lab"]["hosts"] == {}


def test_ssh_argv_uses_the_lab_key_and_strict_known_hosts():
    a = _accesses(n=1)[0]
    argv = L.ssh_argv_for(a, ["systemctl", "is-system-running"])
    assert argv[0] == "ssh"
    assert argv[argv.index("-i") + 1] == "/var/lib/kafka-metal/lab/id_ed25519"
    assert "UserKnownHostsFile=/var/lib/kafka-metal/lab/known_hosts" in argv
    assert "StrictHostKeyChecking=yes" in argv
    assert "BatchMode=yes" not in argv
    assert argv[-4:] == ["root@10.231.0.11", "--", "systemctl", "is-system-running"]
    interactive = L.ssh_argv_for(a)
    assert interactive[-1] == "root@10.231.0.11"
    assert "BatchMode=yes" in L.ssh_argv_for(a, ["true"], batch=True)


def test_render_table():
    assert render_table([("node1", "10.231.0.11"), ("node10", "10.231.0.20")], ("HOST", "ADDRESS")) == (
        "HOST    ADDRESS\nnode1   10.231.0.11\nnode10  10.231.0.20"
    )


# --- parsing system state ------------------------------------------------------------------------

MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
300 22 0:50 / /tmp/kmtest/hosts/node1/merged rw,relatime shared:200 - overlay overlay rw,lowerdir=/x
301 22 0:51 / /tmp/kmtest/hosts/node2/merged rw,relatime shared:201 - overlay overlay rw,lowerdir=/x
302 22 0:52 / /tmp/kmtest2/hosts/node1/merged rw - overlay overlay rw
303 22 0:53 / /tmp/with\\040space rw - tmpfs tmpfs rw
"""


def test_parse_mountpoints_and_mounts_under():
    points = L.parse_mountpoints(MOUNTINFO)
    assert points[0] == "/"
    assert "/tmp/with space" in points
    assert L.mounts_under(points, "/tmp/kmtest") == [
        "/tmp/kmtest/hosts/node2/merged",
        "/tmp/kmtest/hosts/node1/merged",
    ]
    assert L.mounts_under(points, "/tmp/kmtest/") == L.mounts_under(points, "/tmp/kmtest")
    assert L.mounts_under(points, "/nothing") == []


def test_parse_netns_list():
    text = "kmlab-node2 (id: 1)\nkmlab-node1 (id: 0)\nother\n\n"
    assert L.parse_netns_list(text) == ["kmlab-node2", "kmlab-node1", "other"]
    assert L.parse_netns_list("") == []


def test_parse_ip_links():
    text = json.dumps([{"ifindex": 1, "ifname": "lo"}, {"ifindex": 5, "ifname": "kmlab0"}])
    assert L.parse_ip_links(text) == ["lo", "kmlab0"]
    assert L.parse_ip_links("") == []


IPTABLES_NAT = """\
-P PREROUTING ACCEPT
-P POSTROUTING ACCEPT
-A POSTROUTING -s 172.17.0.0/16 ! -o docker0 -j MASQUERADE
-A POSTROUTING -s 10.231.0.0/24 ! -o kmlab0 -m comment --comment kafka-metal-lab:kmlab0 -j MASQUERADE
-A POSTROUTING -s 10.232.0.0/24 ! -o kmtest0 -m comment --comment kafka-metal-lab:kmtest0 -j MASQUERADE
"""


def test_tagged_rule_deletions_only_touch_our_rules():
    assert L.tagged_rule_deletions(IPTABLES_NAT, NET.tag) == [
        [
            "-D",
            "POSTROUTING",
            "-s",
            "10.231.0.0/24",
            "!",
            "-o",
            "kmlab0",
            "-m",
            "comment",
            "--comment",
            "kafka-metal-lab:kmlab0",
            "-j",
            "MASQUERADE",
        ],
    ]
    assert L.tagged_rule_deletions(IPTABLES_NAT, "kafka-metal-lab:nothing") == []


def test_nat_rules_round_trip_through_deletions():
    """What up adds (as iptables -S prints it) is exactly what down deletes."""
    printed = "\n".join(f"-A {shlex.join(rule)}" for _table, rule in L.nat_rules(NET))
    deletions = L.tagged_rule_deletions(printed, NET.tag)
    assert deletions == [["-D", *rule] for _table, rule in L.nat_rules(NET)]
    assert [t for t, _ in L.nat_rules(NET)] == ["nat", "filter", "filter"]
    masq = L.nat_rules(NET)[0][1]
    assert masq[:6] == ["POSTROUTING", "-s", "10.231.0.0/24", "!", "-o", "kmlab0"]
    assert masq[-2:] == ["-j", "MASQUERADE"]


def test_is_lab_nspawn():
    argv = L.nspawn_argv("/var/lib/kafka-metal/lab/hosts/node1/merged", L.plan_host(NET, 1))
    assert L.is_lab_nspawn(["/usr/bin/systemd-nspawn", *argv[1:]], "kmlab-") == "kmlab-node1"
    assert L.is_lab_nspawn(argv, "kmtest-") is None
    assert L.is_lab_nspawn(["bash", "--network-namespace-path=/run/netns/kmlab-node1"], "kmlab-") is None
    assert L.is_lab_nspawn([], "kmlab-") is None


def test_nspawn_argv():
    argv = L.nspawn_argv("/s/hosts/node3/merged", L.plan_host(TEST_NET, 3))
    assert argv[:5] == ["systemd-nspawn", "-q", "-D", "/s/hosts/node3/merged", "-b"]
    for flag in (
        "--register=no",
        "--keep-unit",
        "--hostname=node3",
        "--machine=kmtest-node3",
        "--network-namespace-path=/run/netns/kmtest-node3",
    ):
        assert flag in argv


def test_log_tail_strips_terminal_codes():
    text = "".join(f"\x1b[0;32m  OK  \x1b[0m] line {i}\r\n\r\n" for i in range(40))
    tail = L.log_tail(text, lines=3)
    assert tail == "  OK  ] line 37\n  OK  ] line 38\n  OK  ] line 39"


# --- the Lab object and the command line without root -------------------------------------------


@pytest.fixture(autouse=True)
def no_side_effects(monkeypatch):
    """Unit tests run as root on the builder too: make sure none of them reaches a real command."""

    def refuse(*args, **kwargs):
        raise AssertionError(f"a unit test tried to change the system: {args}")

    monkeypatch.setattr(L, "run", refuse)
    monkeypatch.setattr(lab_system, "run", refuse)
    monkeypatch.setattr(L.Lab, "_start_host", refuse)
    monkeypatch.setattr(L.Lab, "_locked", refuse)


def test_state_and_cache_dirs_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv("KAFKA_METAL_LAB_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("KAFKA_METAL_CACHE_DIR", str(tmp_path / "cache"))
    lab = L.Lab()
    assert lab.state_dir == tmp_path / "state"
    assert lab.inventory_file == tmp_path / "state" / "inventory.yml"
    assert lab.base_dir.parent == tmp_path / "cache"
    assert L.Lab(state_dir=tmp_path / "x").state_dir == tmp_path / "x"


def test_defaults_without_environment(monkeypatch):
    monkeypatch.delenv("KAFKA_METAL_LAB_DIR", raising=False)
    monkeypatch.delenv("KAFKA_METAL_CACHE_DIR", raising=False)
    lab = L.Lab()
    assert str(lab.state_dir) == "/var/lib/kafka-metal/lab"
    assert str(lab.cache_dir) == "/var/cache/kafka-metal"


def test_network_comes_from_the_recorded_lab(tmp_path):
    (tmp_path / "lab.json").write_text(
        json.dumps(
            {"bridge": "kmtest0", "subnet": "10.232.0.0/24", "netns_prefix": "kmtest-", "hosts": ["node1", "node2"]}
        )
    )
    lab = L.Lab(state_dir=tmp_path)
    assert lab.net == TEST_NET
    assert [s for s in lab.ssh_argv("node2") if s.startswith("root@")] == ["root@10.232.0.12"]
    assert lab.ssh_argv("10.232.0.11", ["true"])[-3:] == ["root@10.232.0.11", "--", "true"]


def test_ssh_to_unknown_host(tmp_path):
    with pytest.raises(L.LabError) as exc:
        L.Lab(state_dir=tmp_path).ssh_argv("node1")
    assert str(exc.value) == "no lab host 'node1' (lab hosts: none: run 'kafka-metal lab up')"


def test_status_of_no_lab(tmp_path):
    assert L.Lab(state_dir=tmp_path / "none").status() == []


def test_up_refuses_bad_count_before_anything_changes(tmp_path):
    state = tmp_path / "state"
    with pytest.raises(L.LabError, match="--hosts must be between 1 and 50, got 51"):
        L.Lab(state_dir=state, cache_dir=tmp_path / "cache").up(51)
    assert not state.exists() and not (tmp_path / "cache").exists()


def test_up_refuses_without_root(monkeypatch, tmp_path):
    monkeypatch.setattr(L.os, "geteuid", lambda: 1000)
    state = tmp_path / "state"
    with pytest.raises(L.LabError) as exc:
        L.Lab(state_dir=state, cache_dir=tmp_path / "cache").up(2)
    assert str(exc.value) == "the lab needs root (network namespaces, mounts, iptables): run it with sudo"
    assert not state.exists()
    with pytest.raises(L.LabError, match="needs root"):
        L.Lab(state_dir=state).down()


def test_up_refuses_missing_tools(monkeypatch, tmp_path):
    monkeypatch.setattr(L.os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda t: None if t == "systemd-nspawn" else "/usr/bin/" + t)
    state = tmp_path / "state"
    with pytest.raises(L.LabError) as exc:
        L.Lab(state_dir=state, cache_dir=tmp_path / "cache").up(2)
    assert str(exc.value) == (
        "missing command(s): systemd-nspawn; install them with: apt-get install -y systemd-container"
    )
    assert not state.exists()


def test_up_refuses_bad_network_before_anything_changes(monkeypatch, tmp_path):
    monkeypatch.setattr(L.os, "geteuid", lambda: 0)
    monkeypatch.setattr(shutil, "which", lambda t: "/usr/bin/" + t)
    state = tmp_path / "state"
    with pytest.raises(L.LabError, match="bridge name"):
        L.Lab(state_dir=state, bridge="much-too-long-bridge").up(1)
    with pytest.raises(L.LabError, match="cannot contain"):
        L.Lab(state_dir=tmp_path / "a,b").up(1)
    assert not state.exists()


def test_cli_error_is_one_line(capsys, tmp_path):
    rc = lab_cli.main(["up", "--hosts", "0", "--state-dir", str(tmp_path / "s")])
    assert rc == 1
    err = capsys.readouterr().err
    assert err == "kafka-metal lab: error: --hosts must be between 1 and 50, got 0\n"


def test_cli_status_json_of_no_lab(capsys, tmp_path):
    assert lab_cli.main(["status", "--json", "--state-dir", str(tmp_path)]) == 0
    assert json.loads(capsys.readouterr().out) == []


def test_cli_ssh_passes_the_command_through(monkeypatch, tmp_path):
    (tmp_path / "lab.json").write_text(json.dumps({"hosts": ["node1"]}))
    seen = []
    monkeypatch.setattr(L.subprocess, "run", lambda argv: seen.append(argv) or type("P", (), {"returncode": 7}))
    assert lab_cli.main(["lab", "ssh", "--state-dir", str(tmp_path), "node1", "--", "ls", "-l", "/"]) == 7
    assert seen[0][-5:] == ["root@10.231.0.11", "--", "ls", "-l", "/"]


def test_add_subparser_registers_the_tree():
    import argparse

    parser = argparse.ArgumentParser(prog="kafka-metal")
    lab_cli.add_subparser(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["lab", "up", "--hosts", "6", "--json"])
    assert (args.hosts, args.json, args.func) == (6, True, lab_cli._cmd_up)
    assert parser.parse_args(["lab", "down"]).func is lab_cli._cmd_down
    assert parser.parse_args(["lab", "status"]).json is False
    ssh = parser.parse_args(["lab", "ssh", "node2"])
    assert (ssh.host, ssh.command, ssh.func) == ("node2", [], lab_cli._cmd_ssh)


def _ip_addr(*links):
    return json.dumps(
        [
            {"ifname": name, "addr_info": [{"family": "inet", "local": a, "prefixlen": p} for a, p in addrs]}
            for name, addrs in links
        ]
    )


def test_subnet_conflict():
    free = _ip_addr(("lo", [("127.0.0.1", 8)]), ("eth0", [("10.0.0.5", 24)]), ("kmlab0", [("10.231.0.1", 24)]))
    assert L.subnet_conflict(free, NET) is None  # the lab's own bridge is no conflict
    assert L.subnet_conflict("[]", NET) is None
    taken = _ip_addr(("eth1", [("10.231.5.7", 16)]))
    assert L.subnet_conflict(taken, NET) == (
        "the lab subnet 10.231.0.0/24 overlaps 10.231.5.7/16 on eth1: choose another subnet (--subnet)"
    )
    assert L.subnet_conflict(_ip_addr(("kmlab0", [("10.232.0.1", 24)])), TEST_NET) is not None


HYBRID_MOUNTINFO = """\
22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw
30 22 0:26 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
31 30 0:27 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
32 30 0:28 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,xattr,name=systemd
33 30 0:29 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
UNIFIED_MOUNTINFO = "25 22 0:23 / /sys/fs/cgroup rw,nosuid - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n"


def test_cgroup_mounts():
    assert L.cgroup_mounts(HYBRID_MOUNTINFO) == ["/sys/fs/cgroup/systemd", "/sys/fs/cgroup/unified"]
    assert L.cgroup_mounts(UNIFIED_MOUNTINFO) == ["/sys/fs/cgroup"]
    assert L.cgroup_mounts(MOUNTINFO) == []


def test_each_host_gets_its_own_cgroup():
    assert L.host_cgroups(HYBRID_MOUNTINFO, "kmlab-node2") == [
        "/sys/fs/cgroup/systemd/kafka-metal-lab/kmlab-node2",
        "/sys/fs/cgroup/unified/kafka-metal-lab/kmlab-node2",
    ]
    assert L.host_cgroups(UNIFIED_MOUNTINFO, "kmtest-node1") == ["/sys/fs/cgroup/kafka-metal-lab/kmtest-node1"]


def test_cgroup_exec_helper_joins_then_execs(tmp_path):
    """The helper nspawn is started through: writes its pid to each cgroup.procs, then execs the command."""
    import subprocess
    import sys

    procs = [tmp_path / "a.procs", tmp_path / "b.procs"]
    out = subprocess.run(
        [sys.executable, "-I", "-S", "-c", L.CGROUP_EXEC, "2", *map(str, procs), "sh", "-c", "echo $$"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    assert [p.read_text() for p in procs] == [out, out]  # same pid: exec, not a child
