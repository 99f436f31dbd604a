#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_node
short_description: Make a Kafka or ZooKeeper node's directories, files, unit and service match, in one run
version_added: 0.3.0
description:
  - Takes the node's whole desired state, rendered on the controller (configuration, logging, systemd unit,
    credentials, key and trust stores, the node's manifest, directories with owners and modes, the version
    link), compares it with the host and changes only what differs, atomically, in one module execution.
  - Then, when asked, formats empty storage directories (the rules of M(metal.kafka.kafka_storage)), reloads
    systemd when the unit changed, enables the service and starts it when it is not running.
  - A running service is never restarted here. RV(restart_needed) says whether a path the process reads
    changed while it ran; the roles hand such nodes to the rolling engine (M(metal.kafka.kafka_roll)).
  - Secret files (O(secret_files)) never appear in a diff, a result or a log, in any mode.
options:
  directories:
    description: Directories to create or correct (not recursive).
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      owner: {description: Owner (a user name)., type: str, default: root}
      group: {description: Group (a group name)., type: str, default: root}
      mode: {description: Octal mode as a string., type: str, default: "0755"}
  files:
    description: Files with their whole content; their diffs show the content.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      content: {description: The file's content., type: str, required: true}
      owner: {description: Owner (a user name)., type: str, default: root}
      group: {description: Group (a group name)., type: str, default: root}
      mode: {description: Octal mode as a string., type: str, default: "0644"}
      restart: {description: The node's process reads this file (a change while it runs needs a restart)., type: bool,
                default: true}
  secret_files:
    description: Files holding secrets (passwords, private keys); like O(files), but never shown.
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      content: {description: The file's content., type: str, required: true}
      owner: {description: Owner (a user name)., type: str, default: root}
      group: {description: Group (a group name)., type: str, default: root}
      mode: {description: Octal mode as a string., type: str, default: "0600"}
      restart: {description: The node's process reads this file., type: bool, default: true}
  links:
    description: Symbolic links (the version in use).
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: The link., type: path, required: true}
      target: {description: What it points to., type: path, required: true}
      restart: {description: The node's process runs from it., type: bool, default: true}
  absent:
    description: Files that must not exist (a credentials file left from a secured setup).
    type: list
    elements: dict
    default: []
    suboptions:
      path: {description: Absolute path., type: path, required: true}
      restart: {description: The node's process read it., type: bool, default: true}
  storage:
    description: Format the node's empty storage directories before the service starts (KRaft).
    type: dict
    suboptions:
      cluster_id: {description: The cluster id., type: str, required: true}
      node_id: {description: This node's id., type: int, required: true}
      dirs: {description: Log directories and the metadata directory., type: list, elements: path, required: true}
      config: {description: The server.properties to format with., type: path, required: true}
      kafka_home: {description: The Kafka installation whose kafka-storage.sh formats., type: path, required: true}
      owner: {description: Owner of the formatted directories., type: str, default: kafka}
      group: {description: Group of the formatted directories., type: str, default: kafka}
      java_home: {description: Java for the tool., type: path}
      initial_controllers:
        description:
          - A controller of a new cluster with a dynamic quorum, the first voters as C(id@host:port:directory-id),
            comma separated (C(kafka-storage format --initial-controllers)).
        type: str
        default: ''
      no_initial_controllers:
        description:
          - A controller that joins an existing dynamic quorum; it starts as an observer until it is added
            (C(kafka-metal quorum add)).
        type: bool
        default: false
      scram_credentials:
        description: SCRAM credentials written into the new cluster's first metadata (controllers).
        type: list
        elements: dict
        default: []
        suboptions:
          mechanism: {description: SCRAM mechanism., type: str, default: SCRAM-SHA-512,
                      choices: [SCRAM-SHA-512, SCRAM-SHA-256]}
          name: {description: User name., type: str, required: true}
          password: {description: Password., type: str, required: true}
          iterations: {description: Iterations., type: int, default: 8192}
  service:
    description: The systemd unit of the node; without it only files, directories and links are handled.
    type: str
  unit_file:
    description: The unit's file among O(files); systemd is reloaded when it changed.
    type: path
  state:
    description:
      - C(started) enables and starts O(service) when it does not run; C(enabled) only enables it (a unit that
        runs at boot); C(present) only writes.
    type: str
    choices: [started, enabled, present]
    default: started
extends_documentation_fragment:
  - metal.kafka.changes
"""

EXAMPLES = r"""
- name: Configure and start the node
  metal.kafka.kafka_node:
    service: kafka.service
    unit_file: /etc/systemd/system/kafka.service
    directories:
      - {path: /var/lib/kafka/data, owner: kafka, group: kafka, mode: "0750"}
    files:
      - path: /etc/kafka/server.properties
        content: "{{ lookup('ansible.builtin.template', 'etc/kafka/server.properties.j2') }}"
        owner: root
        group: kafka
        mode: "0640"
      - path: /etc/systemd/system/kafka.service
        content: "{{ lookup('ansible.builtin.template', 'etc/systemd/system/kafka.service.j2') }}"
  register: __node
"""

RETURN = r"""
changes:
  description: What changed (or would), in order, without content.
  returned: always
  type: list
  elements: dict
formatted:
  description: Storage directories formatted (or that would be).
  returned: always
  type: list
  elements: str
was_active:
  description: Whether the service ran before this run.
  returned: always
  type: bool
started:
  description: Whether the service was started (or would be).
  returned: always
  type: bool
restart_needed:
  description: The service ran and a path its process reads changed; restart it through the rolling engine.
  returned: always
  type: bool
"""

import grp
import os
import pwd
import shutil

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils import files as fs
from ansible_collections.metal.kafka.plugins.module_utils import node
from ansible_collections.metal.kafka.plugins.module_utils.storage import StorageError, format_dirs

_FILE = dict(path=dict(type="path", required=True), content=dict(type="str", required=True),
             owner=dict(type="str", default="root"), group=dict(type="str", default="root"),
             mode=dict(type="str", default="0644"), restart=dict(type="bool", default=True))


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            directories=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True), owner=dict(type="str", default="root"),
                group=dict(type="str", default="root"), mode=dict(type="str", default="0755"))),
            files=dict(type="list", elements="dict", default=[], options=_FILE),
            # only the contents are secret: masking the whole entries would mask their paths, owners and modes
            # wherever they appear in the output
            # the entries' paths and owners are shown; only their content is secret (no_log on it)
            secret_files=dict(type="list", elements="dict", default=[], no_log=False,
                              options=dict(_FILE, mode=dict(type="str", default="0600"),
                                           content=dict(type="str", required=True, no_log=True))),
            links=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True), target=dict(type="path", required=True),
                restart=dict(type="bool", default=True))),
            absent=dict(type="list", elements="dict", default=[], options=dict(
                path=dict(type="path", required=True), restart=dict(type="bool", default=True))),
            storage=dict(type="dict", options=dict(
                cluster_id=dict(type="str", required=True), node_id=dict(type="int", required=True),
                dirs=dict(type="list", elements="path", required=True), config=dict(type="path", required=True),
                kafka_home=dict(type="path", required=True), owner=dict(type="str", default="kafka"),
                group=dict(type="str", default="kafka"), java_home=dict(type="path"),
                initial_controllers=dict(type="str", default=""),
                no_initial_controllers=dict(type="bool", default=False),
                scram_credentials=dict(type="list", elements="dict", default=[], options=dict(
                    mechanism=dict(type="str", default="SCRAM-SHA-512", choices=["SCRAM-SHA-512", "SCRAM-SHA-256"]),
                    name=dict(type="str", required=True), password=dict(type="str", required=True, no_log=True),
                    iterations=dict(type="int", default=8192))))),
            service=dict(type="str"),
            unit_file=dict(type="path"),
            state=dict(type="str", choices=["started", "enabled", "present"], default="started"),
        ),
        required_by={"unit_file": "service"},
        supports_check_mode=True,
    )


def _ids(owner, group):
    try:
        uid = pwd.getpwnam(owner).pw_uid
    except KeyError:
        uid = None
    try:
        gid = grp.getgrnam(group).gr_gid
    except KeyError:
        gid = None
    return uid, gid


def _observe(path):
    state = fs.path_state(path)
    return state, fs.read_bytes(path) if state.kind == "file" else None


def _unit(module, service):
    systemctl = module.get_bin_path("systemctl", required=True)
    rc, out, _ = module.run_command([systemctl, "show", service, "-p",
                                     "ActiveState,UnitFileState,LoadState,NeedDaemonReload"])
    props = dict(line.split("=", 1) for line in out.splitlines() if "=" in line) if rc == 0 else {}
    return systemctl, props


def _apply(module, change, specs):
    spec = specs[change.path]
    if change.kind == "absent":
        os.unlink(change.path)
        return
    if change.kind == "link":
        tmp = f"{change.path}.kafka-metal-new"
        if os.path.lexists(tmp):
            os.unlink(tmp)
        os.symlink(spec["target"], tmp)
        os.replace(tmp, change.path)
        return
    uid, gid = _ids(spec["owner"], spec["group"])
    if uid is None or gid is None:
        module.fail_json(msg=f"{change.path}: owner {spec['owner']}:{spec['group']} does not exist on this host; "
                             "the kafka role creates the Kafka user and group first")
    mode = node.mode_of(spec["mode"], change.path)
    if change.kind == "directory":
        os.makedirs(change.path, exist_ok=True)
        os.chown(change.path, uid, gid)
        os.chmod(change.path, mode)
        return
    content = spec["content"]
    fs.write_file(change.path, content.encode() if isinstance(content, str) else content, mode, uid, gid)


def run(module):
    p = module.params
    check = module.check_mode
    specs = {s["path"]: s for key in ("directories", "files", "secret_files", "links", "absent") for s in p[key]}
    secret = [dict(s, secret=True) for s in p["secret_files"]]
    try:
        changes = node.plan(p["directories"], p["files"] + secret, p["links"], p["absent"], _observe, _ids)
    except node.NodeError as exc:
        module.fail_json(msg=f"nothing changed: {exc}")
    systemctl, unit = _unit(module, p["service"]) if p["service"] else (None, {})
    was_active = unit.get("ActiveState") == "active"
    if not check:
        for change in changes:
            _apply(module, change, specs)
    result = dict(changes=[c.as_dict() for c in changes], was_active=was_active, started=False, formatted=[],
                  restart_needed=node.restart_needed(was_active, changes))

    unit_changed = p["unit_file"] is not None and any(c.path == p["unit_file"] for c in changes)
    if systemctl and (unit_changed or unit.get("NeedDaemonReload") == "yes") and not check:
        module.run_command([systemctl, "daemon-reload"], check_rc=True)
        result["daemon_reloaded"] = True

    storage = p["storage"]
    if storage:
        try:
            decision, _ = format_dirs(module.run_command, storage["dirs"], storage["cluster_id"],
                                      storage["node_id"], storage["config"], storage["kafka_home"],
                                      storage["owner"], storage["group"], storage["java_home"],
                                      scram_credentials=storage["scram_credentials"],
                                      initial_controllers=storage["initial_controllers"],
                                      no_initial_controllers=storage["no_initial_controllers"],
                                      check=check)
        except StorageError as exc:
            module.fail_json(msg=f"storage check failed: {exc}", **result)
        result["formatted"] = decision["format"]

    enabled_now = False
    if p["service"] and p["state"] in ("started", "enabled"):
        missing = unit.get("LoadState") in (None, "not-found") and not os.path.exists(p["unit_file"] or "/nonexistent")
        if unit.get("UnitFileState") != "enabled" and not missing:
            if not check:
                module.run_command([systemctl, "enable", p["service"]], check_rc=True)
            enabled_now = True
        if not was_active and p["state"] == "started":
            if not check:
                rc, out, err = module.run_command([systemctl, "start", p["service"]])
                if rc != 0:
                    journal = shutil.which("journalctl")
                    tail = module.run_command([journal, "-u", p["service"], "-n", "30", "--no-pager"])[1] \
                        if journal else ""
                    module.fail_json(msg=f"{p['service']} failed to start: {(err or out).strip()}; last log "
                                         f"lines:\n{tail}", **result)
            result["started"] = True
    result["enabled"] = enabled_now
    result["changed"] = bool(changes or result["formatted"] or result["started"] or enabled_now)
    if changes or result["formatted"]:
        result["diff"] = node.diffs(changes) + [
            {"before_header": d, "after_header": d, "before": f"{d}: unformatted\n",
             "after": f"{d}: formatted for this cluster and node\n"} for d in result["formatted"]]
    module.exit_json(**result)


def main():
    run(build_module())


if __name__ == "__main__":
    main()
