# Copyright: kafka-metal contributors
# Apache License 2.0
"""Decide what to do with a node's storage directories before Kafka may start.

Kafka refuses to start on an unformatted directory; formatting writes ``meta.properties``
(cluster id, node id). Formatting a directory that belongs to another cluster would throw
its data away, so the plan here formats only directories that are empty (or missing), does
nothing when every directory already carries this cluster's id and this node's id, and
refuses loudly on any mismatch or on a non-empty directory without ``meta.properties``.
"""

from __future__ import annotations

import os

from .properties import parse

META_FILE = "meta.properties"
# Entries a freshly made filesystem may hold; they do not count as data.
_IGNORABLE = {"lost+found"}


class StorageError(RuntimeError):
    """A directory is in a state kafka-metal will not touch."""


def inspect_dir(path):
    """Return a dict describing ``path``: exists, empty, meta (dict or None), entries."""
    state = {"path": path, "exists": os.path.isdir(path), "empty": True, "meta": None, "entries": []}
    if not state["exists"]:
        if os.path.exists(path):
            state["exists"] = True
            state["empty"] = False
            state["entries"] = ["(not a directory)"]
        return state
    entries = sorted(e for e in os.listdir(path) if e not in _IGNORABLE)
    state["entries"] = entries
    state["empty"] = not entries
    meta_path = os.path.join(path, META_FILE)
    if os.path.isfile(meta_path):
        with open(meta_path, encoding="utf-8") as fh:
            state["meta"] = parse(fh.read())
    return state


def plan(states, cluster_id, node_id):
    """Return ``{"format": [dirs], "formatted": [dirs]}`` or raise StorageError.

    ``states``: results of :func:`inspect_dir` for every log dir and the metadata dir.
    """
    to_format, formatted, errors = [], [], []
    for st in states:
        path, meta = st["path"], st["meta"]
        if meta is not None:
            found_cluster = meta.get("cluster.id")
            found_node = meta.get("node.id", meta.get("broker.id"))
            if found_cluster != cluster_id:
                errors.append(
                    f"{path} belongs to cluster {found_cluster}, not {cluster_id}: refusing to format it "
                    f"(that would destroy its data). If this node is part of cluster {found_cluster}, set "
                    f"kafka_cluster_id: {found_cluster}; if the data is stale, remove it yourself"
                )
            elif node_id is not None and found_node is not None and str(found_node) != str(node_id):
                errors.append(
                    f"{path} was formatted for node {found_node}, but this host's kafka_node_id is "
                    f"{node_id}: node ids must not change under existing data; restore the old id"
                )
            else:
                formatted.append(path)
        elif not st["empty"]:
            shown = ", ".join(st["entries"][:5])
            errors.append(
                f"{path} is not empty ({shown}) and has no {META_FILE}: refusing to format it; "
                "point the inventory at an empty directory or move its contents away"
            )
        else:
            to_format.append(path)
    if errors:
        raise StorageError("\n".join(errors))
    return {"format": to_format, "formatted": formatted}


def cluster_ids(states):
    """Cluster ids found in the given directory states (for choosing the cluster id)."""
    return sorted({st["meta"]["cluster.id"] for st in states if st["meta"] and st["meta"].get("cluster.id")})


def format_dirs(run_command, dirs, cluster_id, node_id, config, kafka_home, owner, group, java_home=None,
                release_version=None, scram_credentials=(), initial_controllers="", no_initial_controllers=False,
                check=False):
    """Format the directories of ``dirs`` that need it (:func:`plan`) with ``kafka-storage format``, hand them to
    ``owner``/``group``, and prove the result. ``run_command(argv, environ_update=...) -> (rc, out, err)``.
    Returns ``(decision, stdout)``; raises :class:`StorageError` with the reason (nothing formatted on a refusal).

    A controller of a dynamic quorum is formatted either with ``initial_controllers`` (a new cluster: every first
    controller gets the same list, each voter with its metadata directory's id) or with ``no_initial_controllers``
    (a controller joining an existing quorum, which starts as an observer until it is added).

    The arguments (SCRAM credentials among them) reach the tool through an argument file readable only by its
    owner and removed right after, never on a command line the process list shows."""
    import grp
    import pwd

    from .security import storage_scram_argument
    from .tools import private_file, tool_env

    dirs = list(dict.fromkeys(dirs))
    decision = plan([inspect_dir(d) for d in dirs], cluster_id, node_id)
    if not decision["format"] or check:
        return decision, ""
    tool = os.path.join(kafka_home, "bin", "kafka-storage.sh")
    if not os.access(tool, os.X_OK):
        raise StorageError(f"{tool} is missing or not executable: install Kafka before formatting")
    args = ["format", "-t", cluster_id, "-c", config, "--ignore-formatted"]
    if release_version:
        args += ["--release-version", release_version]
    if initial_controllers:
        args += ["--initial-controllers", initial_controllers]
    elif no_initial_controllers:
        args.append("--no-initial-controllers")
    try:
        for cred in scram_credentials:
            args += ["--add-scram", storage_scram_argument(cred["mechanism"], cred["name"], cred["password"],
                                                           cred["iterations"], os.urandom(32))]
    except ValueError as exc:
        raise StorageError(f"cannot bootstrap SCRAM credentials: {exc}") from None
    with private_file("".join(f"{a}\n" for a in args)) as argfile:
        rc, out, err = run_command([tool, "@" + argfile], environ_update=tool_env(java_home))
    if rc != 0:
        raise StorageError(f"kafka-storage format -t {cluster_id} -c {config} failed (rc={rc}): "
                           f"{(err or out or '').strip()[-1500:]}")
    uid, gid = pwd.getpwnam(owner).pw_uid, grp.getgrnam(group).gr_gid
    for d in decision["format"]:
        if not os.path.isdir(d):
            raise StorageError(f"{d} was not created by kafka-storage format; is it in the config file?")
        _chown_tree(d, uid, gid)
    after = plan([inspect_dir(d) for d in dirs], cluster_id, node_id)
    if after["format"]:
        raise StorageError(f"kafka-storage left directories unformatted: {', '.join(after['format'])}; each must "
                           "appear in log.dirs or metadata.log.dir of the config")
    return decision, out


def _chown_tree(path, uid, gid):
    os.chown(path, uid, gid)
    for root, dirs, files in os.walk(path):
        for name in dirs + files:
            os.lchown(os.path.join(root, name), uid, gid)
