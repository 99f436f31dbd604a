# Copyright: kafka-metal contributors
# Apache License 2.0
"""One run per node: what must change on a host so that a node's directories, files and links match what the
role rendered, and whether its running process must restart for it.

:func:`plan` is pure: it takes the desired state and an ``observe(path) -> (PathState, bytes or None)`` and
returns the changes in the order they are applied (directories, files, links, removals). The ``kafka_node``
module observes the host, applies the plan, formats storage and starts the service, all in one execution.

Desired state, as the module takes it (owners by name, modes as octal strings):

- ``directories``: ``{path, owner, group, mode}``;
- ``files``: ``{path, content, owner, group, mode, restart, secret}``: a secret file's content never appears in
  a diff or a result;
- ``links``: ``{path, target, restart}``;
- ``absent``: ``{path, restart}``.

``restart`` says whether the node's process reads the path: a running process restarts (through the rolling
engine, never here) only when such a path changed.

The node's manifest (:func:`manifest`) is written beside it: what the node is and every file its process reads,
so the rolling engine knows what to watch without a fixed list of its own.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

MANIFEST_DIR = "/etc/kafka-metal"
MANIFEST_VERSION = 1


class NodeError(ValueError):
    """The desired state cannot be applied; the message names the path and the fix."""


@dataclass
class Change:
    path: str
    kind: str  # directory, file, link, absent
    what: list = field(default_factory=list)  # created, content, mode, owner, target, removed
    restart: bool = False
    secret: bool = False
    before: str | None = None  # text for the diff (files that are not secret)
    after: str | None = None

    def as_dict(self):
        return {"path": self.path, "kind": self.kind, "what": list(self.what), "restart": self.restart}


def mode_of(value, path):
    try:
        mode = int(str(value), 8)
    except ValueError:
        raise NodeError(f"{path}: mode {value!r} is not an octal mode like '0640'") from None
    if not 0 <= mode <= 0o7777:
        raise NodeError(f"{path}: mode {value!r} is out of range")
    return mode


def _owner_diff(state, uid, gid):
    """Whether the owner differs; an id of None (user not created yet, check mode) counts as a difference."""
    return uid is None or gid is None or state.uid != uid or state.gid != gid


def plan(directories, files, links, absent, observe, ids):
    """The changes that make the host match. ``ids(owner, group) -> (uid or None, gid or None)``."""
    changes = []
    seen = set()
    for spec in [*directories, *files, *links, *absent]:
        if spec["path"] in seen:
            raise NodeError(f"{spec['path']} is named twice in the node's desired state")
        seen.add(spec["path"])

    for d in directories:
        state, _ = observe(d["path"])
        uid, gid = ids(d["owner"], d["group"])
        mode = mode_of(d["mode"], d["path"])
        if state.kind == "absent":
            changes.append(Change(d["path"], "directory", ["created"]))
            continue
        if state.kind != "dir":
            raise NodeError(f"{d['path']} should be a directory but is a {state.kind}: move it away")
        what = (["mode"] if state.mode != mode else []) + (["owner"] if _owner_diff(state, uid, gid) else [])
        if what:
            changes.append(Change(d["path"], "directory", what))

    for f in files:
        state, current = observe(f["path"])
        uid, gid = ids(f["owner"], f["group"])
        mode = mode_of(f["mode"], f["path"])
        want = f["content"].encode() if isinstance(f["content"], str) else f["content"]
        secret = bool(f.get("secret"))
        if state.kind not in ("absent", "file"):
            raise NodeError(f"{f['path']} should be a file but is a {state.kind}: move it away")
        if state.kind == "absent":
            what = ["created"]
        else:
            what = ((["content"] if current != want else []) + (["mode"] if state.mode != mode else [])
                    + (["owner"] if _owner_diff(state, uid, gid) else []))
        if what:
            text = (lambda b: None) if secret else (lambda b: b.decode("utf-8", "replace") if b is not None else "")
            changes.append(Change(f["path"], "file", what, bool(f.get("restart", True)), secret,
                                  text(current if state.kind == "file" else None), text(want)))

    for link in links:
        state, _ = observe(link["path"])
        if state.kind not in ("absent", "link"):
            raise NodeError(f"{link['path']} should be a link to {link['target']} but is a {state.kind}")
        if state.kind == "absent" or state.target != link["target"]:
            changes.append(Change(link["path"], "link", ["target"], bool(link.get("restart", True)),
                                  before=f"{link['path']} -> {state.target}\n" if state.target else "",
                                  after=f"{link['path']} -> {link['target']}\n"))

    for gone in absent:
        state, _ = observe(gone["path"])
        if state.kind == "dir":
            raise NodeError(f"{gone['path']} should not exist but is a directory: remove it yourself")
        if state.kind != "absent":
            changes.append(Change(gone["path"], "absent", ["removed"], bool(gone.get("restart", True))))
    return changes


def restart_needed(was_active, changes):
    """A running process restarts when a path it reads changed (never for a node that was not running)."""
    return bool(was_active) and any(c.restart for c in changes)


def diffs(changes):
    """Ansible diff entries: file contents where they are not secret, otherwise what changed."""
    out = []
    for c in changes:
        if not c.secret and (c.kind == "link" or (c.kind == "file" and {"content", "created"} & set(c.what))):
            out.append({"before_header": c.path, "after_header": c.path, "before": c.before or "",
                        "after": c.after or ""})
        else:
            label = "(content not shown) " if c.secret else ""
            out.append({"before_header": c.path, "after_header": c.path, "before": f"{c.kind} {c.path}\n",
                        "after": f"{c.kind} {c.path}: {label}{', '.join(c.what)}\n"})
    return out


def manifest(kind, unit, roles, node_id, reads, log_dirs=(), listeners=None, config_dir=None, install_root=None):
    """The node's description for the rolling engine (and for people): JSON text, keys sorted."""
    return json.dumps({
        "version": MANIFEST_VERSION,
        "kind": kind,
        "unit": unit,
        "roles": list(roles),
        "node_id": node_id,
        "reads": sorted(set(reads)),
        "log_dirs": list(log_dirs),
        "listeners": listeners or {},
        "config_dir": config_dir,
        "install_root": install_root,
    }, indent=2, sort_keys=True) + "\n"


def manifest_path(kind):
    return f"{MANIFEST_DIR}/{kind}.json"


def read_manifest(text):
    """A manifest's dict, or None for text that is not one (an older node without it)."""
    try:
        data = json.loads(text)
    except (TypeError, ValueError):
        return None
    if not isinstance(data, dict) or data.get("version") != MANIFEST_VERSION or not isinstance(data.get("reads"), list):
        return None
    return data
