"""``kafka-metal demo`` builds the cluster as kafka-metal ships it (TLS, SCRAM, ACLs), and the commands it prints
produce and consume through it with the client configuration it wrote; no password is printed.

Lab hosts for real (three combined nodes), from a lab state directory of its own; torn down at the end.
"""

from __future__ import annotations

import json
import os
import shlex
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from kafka_metal import lab as L

pytestmark = [
    pytest.mark.lab,
    pytest.mark.skipif(os.geteuid() != 0, reason="the lab needs root"),
    pytest.mark.skipif(bool(L.missing_tools()), reason="lab tools missing: " + ", ".join(L.missing_tools())),
]

KAFKA_METAL = str(Path(sys.executable).parent / "kafka-metal")


def printed_command(out: str, after: str) -> list[str]:
    lines = out.splitlines()
    index = next(i for i, line in enumerate(lines) if line.startswith(after))
    return shlex.split(lines[index + 1])


def test_the_demo_builds_the_secured_cluster_and_its_commands_produce_and_consume(tmp_path):
    env = dict(os.environ, KAFKA_METAL_LAB_DIR=str(tmp_path / "lab"))
    env.pop("ANSIBLE_VERBOSITY", None)
    demo_dir = tmp_path / "demo"
    try:
        proc = subprocess.run([KAFKA_METAL, "demo", "--topology", "combined", "--messages", "300"], env=env,
                              capture_output=True, text=True, timeout=2400)
        out = proc.stdout + proc.stderr
        print(out[-6000:])
        assert proc.returncode == 0
        assert "(SASL_SSL)" in out and "produced 300, consumed 300" in out

        # secrets stay in root-only files and out of the output
        passwords = json.loads((demo_dir / "passwords.json").read_text())
        assert set(passwords) == {"admin", "demo-client"}
        for secret in passwords.values():
            assert len(secret) >= 24 and secret not in out
        assert stat.S_IMODE(demo_dir.stat().st_mode) == 0o700
        for name in ("passwords.json", "vars.yml", "client.properties"):
            assert stat.S_IMODE((demo_dir / name).stat().st_mode) == 0o600, name

        # the printed commands, as an operator pastes them: the client user writes and reads topic demo
        producer = printed_command(out, "produce to topic demo")
        consumer = printed_command(out, "consume it from the beginning")
        records = [f"record-{i}" for i in range(5)]
        sent = subprocess.run(producer, input="\n".join(records) + "\n", capture_output=True, text=True, timeout=180)
        assert sent.returncode == 0, sent.stdout + sent.stderr
        got = subprocess.run([*consumer, "--max-messages", str(len(records)), "--timeout-ms", "60000"],
                             capture_output=True, text=True, timeout=180)
        assert got.returncode == 0, got.stdout + got.stderr
        assert sorted(got.stdout.split()) == sorted(records)
        assert f"Processed a total of {len(records)} messages" in got.stderr, got.stderr[-3000:]

        # and nothing gets in without the credentials: the same tool with TLS but no SASL login is refused
        config = Path(producer[producer.index("--producer.config") + 1])
        anonymous = tmp_path / "anonymous.properties"
        anonymous.write_text("\n".join(line for line in config.read_text().splitlines()
                                       if not line.startswith(("sasl.", "security.protocol")))
                             + "\nsecurity.protocol=SSL\n")
        refused = subprocess.run([*consumer[:consumer.index("--consumer.config")], "--consumer.config",
                                  str(anonymous), "--max-messages", "1", "--timeout-ms", "20000"],
                                 capture_output=True, text=True, timeout=180)
        # the tool ran and got nothing (it reports how many records it processed)
        assert refused.stdout.strip() == "", refused.stdout
        assert "Processed a total of 0 messages" in refused.stderr, refused.stderr[-3000:]
    finally:
        subprocess.run([KAFKA_METAL, "lab", "down"], env=env, capture_output=True, timeout=600)
