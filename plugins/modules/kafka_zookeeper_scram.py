#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_zookeeper_scram
short_description: Create a SCRAM credential in ZooKeeper before the brokers start (ZooKeeper mode)
version_added: 0.2.0
description:
  - In ZooKeeper mode brokers authenticate to each other with SCRAM, whose credentials live in ZooKeeper;
    they must exist before the first broker starts. This module writes the admin credential there with
    Kafka's own C(kafka-configs.sh --zookeeper), run on a host that has Kafka installed.
  - The credential is created only when the user has none for this mechanism; an existing one is left as it
    is (change passwords of a running cluster with M(metal.kafka.kafka_scram_user)).
  - The password reaches the tool through a configuration file readable only by root, removed right after,
    so it never shows in the process list; it is never logged.
  - The cluster's chroot path is created first when missing (Kafka's tools do not create it).
options:
  zookeeper_connect:
    description: The brokers' C(zookeeper.connect) string, chroot included.
    type: str
    required: true
  kafka_home:
    description: Kafka installation (its C(bin/kafka-configs.sh) and C(libs/) are used).
    type: path
    required: true
  java_home:
    description: JAVA_HOME for the tool.
    type: path
  name:
    description: User name.
    type: str
    required: true
  password:
    description: Password; never logged.
    type: str
    required: true
  mechanism:
    description: SCRAM mechanism.
    type: str
    choices: [SCRAM-SHA-512, SCRAM-SHA-256]
    default: SCRAM-SHA-512
  iterations:
    description: PBKDF2 iterations (at least 4096).
    type: int
    default: 8192
attributes:
  check_mode:
    support: full
    description: Reports whether the credential would be created, without writing.
  diff_mode:
    support: full
    description: Shows the user and mechanism (never the password).
author:
  - kafka-metal maintainers (@kafka-metal)
"""

EXAMPLES = r"""
- name: Create the inter-broker credential before the brokers start
  metal.kafka.kafka_zookeeper_scram:
    zookeeper_connect: zk1:2181,zk2:2181,zk3:2181/kafka
    kafka_home: /opt/kafka/current
    name: admin
    password: "{{ vault_kafka_admin_password }}"
  run_once: true
"""

RETURN = r"""
created:
  description: Whether the credential was created.
  returned: always
  type: bool
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils.tools import private_file, tool_env


def _split_connect(connect):
    """``hosts/chroot`` -> (hosts, chroot or '')."""
    hosts, slash, chroot = connect.partition("/")
    return hosts, ("/" + chroot.rstrip("/")) if slash and chroot.strip("/") else ""


def _env(p):
    return tool_env(p["java_home"])


def has_credential(module, p):
    """True/False; None in check mode when it cannot be told yet (Kafka not unpacked, ZooKeeper not up)."""
    tool = os.path.join(p["kafka_home"], "bin", "kafka-configs.sh")
    if not os.access(tool, os.X_OK):
        if module.check_mode:
            return None
        module.fail_json(msg=f"{tool} is missing or not executable: install Kafka before creating credentials")
    rc, out, err = module.run_command(
        [tool, "--zookeeper", p["zookeeper_connect"], "--describe", "--entity-type", "users",
         "--entity-name", p["name"]], environ_update=_env(p))
    if rc != 0:
        if "NoNode" in err or "NoNode" in out:
            return False
        if module.check_mode:
            return None
        module.fail_json(msg=f"could not read SCRAM credentials of {p['name']} from ZooKeeper (rc={rc}); "
                             "is the ensemble up and zookeeper_connect right?", stderr=err[-2000:])
    return re.search(re.escape(p["mechanism"]) + r"=", out) is not None


def ensure_chroot(module, p):
    hosts, chroot = _split_connect(p["zookeeper_connect"])
    path = ""
    for part in [c for c in chroot.split("/") if c]:
        path += "/" + part
        rc, out, err = module.run_command(
            [os.path.join(p["java_home"] or "", "bin", "java") if p["java_home"] else "java",
             "-cp", os.path.join(p["kafka_home"], "libs", "*"), "org.apache.zookeeper.ZooKeeperMain",
             "-server", hosts, "create", path, ""], environ_update=_env(p))
        if rc != 0 and "exists" not in (out + err):
            module.fail_json(msg=f"could not create the chroot path {path} in ZooKeeper (rc={rc})",
                             stderr=err[-2000:])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            zookeeper_connect=dict(type="str", required=True),
            kafka_home=dict(type="path", required=True),
            java_home=dict(type="path"),
            name=dict(type="str", required=True),
            password=dict(type="str", required=True, no_log=True),
            mechanism=dict(type="str", default="SCRAM-SHA-512", choices=["SCRAM-SHA-512", "SCRAM-SHA-256"]),
            iterations=dict(type="int", default=8192),
        ),
        supports_check_mode=True,
    )
    p = module.params
    if p["iterations"] < 4096:
        module.fail_json(msg="iterations must be at least 4096 (Kafka's minimum)")
    if re.search(r"[\s,\[\]]", p["password"]) or re.search(r"[\s,=\[\]\"']", p["name"]):
        module.fail_json(msg="kafka-configs cannot carry a SCRAM password with spaces, commas or brackets, nor "
                             "a user name with those or = and quotes: choose a password without them")
    diff = dict(before="", after=f"user {p['name']}: {p['mechanism']} (iterations {p['iterations']})\n")
    present = has_credential(module, p)
    if present:
        module.exit_json(changed=False, created=False)
    if module.check_mode:
        note = "" if present is False else " (assumed: Kafka or ZooKeeper is not up yet on this dry run)"
        module.exit_json(changed=True, created=False, diff=diff, msg=f"would create the credential{note}")
    ensure_chroot(module, p)
    # in a config file the value has no brackets (they are only for --add-config)
    value = f"iterations={p['iterations']},password={p['password']}"
    tool = os.path.join(p["kafka_home"], "bin", "kafka-configs.sh")
    with private_file(p["mechanism"] + "=" + value.replace("\\", "\\\\") + "\n", "scram.properties") as path:
        rc, out, err = module.run_command(
            [tool, "--zookeeper", p["zookeeper_connect"], "--alter", "--entity-type", "users",
             "--entity-name", p["name"], "--add-config-file", path], environ_update=_env(p))
    if rc != 0:
        module.fail_json(msg=f"kafka-configs could not create the SCRAM credential of {p['name']} (rc={rc})",
                         stderr=err[-2000:])
    if not has_credential(module, p):
        module.fail_json(msg=f"kafka-configs reported success but no {p['mechanism']} credential of "
                             f"{p['name']} is in ZooKeeper")
    module.exit_json(changed=True, created=True, diff=diff)


if __name__ == "__main__":
    main()
