"""The Kafka archive is verified before it is unpacked, by URL and from the controller.

On a lab host (its own network, so it can run beside another lab): a wrong checksum stops
the run with a clear error and leaves the host as it was (no user, no directories, no
cache); the right one installs into a versioned directory with a `current` link, and a
second run changes nothing. The URL case downloads over HTTP from a server on the lab
bridge's own address (this machine).
"""

import functools
import hashlib
import http.server
import io
import os
import subprocess
import sys
import tarfile
import threading
from pathlib import Path

import pytest
import yaml
from kafka_metal import lab as lab_mod

pytestmark = pytest.mark.lab

REPO = Path(__file__).resolve().parents[2]
VERSION = "4.1.1"
DIST = f"kafka_2.13-{VERSION}"


def make_archive(path):
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, data in ((f"{DIST}/libs/placeholder.jar", b"jar"), (f"{DIST}/bin/kafka-storage.sh", b"#!/bin/sh\n")):
            info = tarfile.TarInfo(name)
            info.size = len(data)
            info.mode = 0o755
            tar.addfile(info, io.BytesIO(data))
    path.write_bytes(buf.getvalue())
    return hashlib.sha512(buf.getvalue()).hexdigest()


@pytest.fixture(scope="module")
def one_host(tmp_path_factory):
    state = tmp_path_factory.mktemp("lab-archive")
    lab = lab_mod.Lab(state_dir=state, bridge="kmarc0", subnet="10.233.0.0/24", netns_prefix="kmarc-")
    try:
        access = lab.up(1, progress=lambda m: None)
        yield lab, access[0]
    finally:
        lab.down(progress=lambda m: None)


@pytest.fixture(scope="module")
def http_root(tmp_path_factory, one_host):
    root = tmp_path_factory.mktemp("www")
    gateway = one_host[0].net.gateway
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(root))
    server = http.server.ThreadingHTTPServer((gateway, 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield root, f"http://{gateway}:{server.server_address[1]}"
    server.shutdown()


def run_play(tmp_path, lab, access, **group_vars):
    inv = {"all": {"children": {"kafka_controllers": {"hosts": {access.name: {"kafka_node_id": 1}}},
                                "kafka_brokers": {"hosts": {access.name: {}}}},
                   # lab containers grant at most 20000 open files (as inventories/lab sets it)
                   "vars": {"kafka_version": VERSION, "kafka_security_protocol": "PLAINTEXT",
                            "kafka_limit_nofile": 16384, **group_vars}}}
    path = tmp_path / "topology.yml"
    path.write_text(yaml.safe_dump(inv))
    env = dict(os.environ, ANSIBLE_CONFIG=str(REPO / "ansible.cfg"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"))
    proc = subprocess.run(
        [str(Path(sys.executable).parent / "ansible-playbook"), "tests/integration/playbooks/install_only.yml",
         "-i", str(lab.inventory_file), "-i", str(path)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    return proc.returncode, proc.stdout + proc.stderr


def host_state(lab, access):
    cmd = ("id kafka >/dev/null 2>&1 && echo user; test -e /opt/kafka && echo opt; "
           "test -e /var/cache/kafka-metal && echo cache; test -e /etc/kafka && echo etc; true")
    # ssh hands its arguments to the remote shell as one line: pass the script as one argument
    out = subprocess.run(lab.ssh_argv(access.name, [cmd], batch=True), capture_output=True,
                         text=True, timeout=60, check=True).stdout
    return set(out.split())


def recap_changed(out):
    line = next(x for x in out.splitlines() if " changed=" in x and "ok=" in x)
    return int(line.split("changed=")[1].split()[0])


def test_src_archive_with_wrong_checksum_leaves_host_untouched(tmp_path, one_host):
    lab, access = one_host
    archive = tmp_path / f"{DIST}.tgz"
    make_archive(archive)
    rc, out = run_play(tmp_path, lab, access, kafka_archive_src=str(archive), kafka_archive_checksum="0" * 128)
    assert rc != 0
    assert f"{archive} on the controller has SHA-512" in out and "Nothing was changed" in out
    assert host_state(lab, access) == set()


def test_url_archive_with_wrong_checksum_leaves_host_untouched(tmp_path, one_host, http_root):
    lab, access = one_host
    root, base = http_root
    make_archive(root / f"{DIST}.tgz")
    rc, out = run_play(tmp_path, lab, access, kafka_archive_url=f"{base}/{DIST}.tgz",
                       kafka_archive_checksum="1" * 128)
    assert rc != 0
    assert "did not match kafka_archive_checksum" in out and "Nothing was installed" in out
    assert host_state(lab, access) == set()


def test_url_archive_verified_installed_and_idempotent(tmp_path, one_host, http_root):
    lab, access = one_host
    root, base = http_root
    digest = make_archive(root / f"{DIST}.tgz")
    rc, out = run_play(tmp_path, lab, access, kafka_archive_url=f"{base}/{DIST}.tgz",
                       kafka_archive_checksum=f"sha512:{digest.upper()}")
    assert rc == 0, out[-3000:]
    # the install alone: user, versioned install, archive cache (the node's configuration directory comes
    # with the node, from the kafka_node module)
    assert host_state(lab, access) >= {"user", "opt", "cache"}
    link = subprocess.run(lab.ssh_argv(access.name, ["readlink", "/opt/kafka/current"], batch=True),
                          capture_output=True, text=True, check=True).stdout.strip()
    assert link == f"/opt/kafka/{DIST}"
    rc, out = run_play(tmp_path, lab, access, kafka_archive_url=f"{base}/{DIST}.tgz",
                       kafka_archive_checksum=digest)
    assert rc == 0 and recap_changed(out) == 0, out[-3000:]
