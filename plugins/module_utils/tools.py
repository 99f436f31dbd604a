# Copyright: kafka-metal contributors
# Apache License 2.0
"""Running Kafka's own command-line tools from modules: their environment, and secrets handed over in files."""

from __future__ import annotations

import contextlib
import os
import shutil
import tempfile


def tool_env(java_home=None, heap="-Xmx256m"):
    """Environment for a short-lived Kafka tool (small heap, C locale, the cluster's Java)."""
    env = {"LC_ALL": "C", "KAFKA_HEAP_OPTS": heap}
    if java_home:
        env["JAVA_HOME"] = java_home
    return env


@contextlib.contextmanager
def private_file(text, name="args"):
    """Yield the path of a file holding ``text``, readable by its owner only, removed afterwards.

    Secrets go to Kafka's tools this way (an ``@argument`` file, a config file), never on a command
    line that every local user can read in the process list.
    """
    workdir = tempfile.mkdtemp(prefix="kafka-metal-")
    try:
        path = os.path.join(workdir, name)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(text)
        yield path
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
