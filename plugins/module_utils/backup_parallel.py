# Copyright: kafka-metal contributors
# Apache License 2.0
"""Child processes that share a backup's or a restore's partitions: one Python per core, each with its
own Kafka client, so the per-record work (digests, encoding, compression, a producer's calls) runs on
every core instead of one.

The children are plain ``python -c`` processes started with the parent's interpreter and import path
(the same code, also from an Ansible module's payload). Each reads one job from its standard input
(pickled: the connection settings, which may hold a password, never appear on a command line or in the
environment) and writes its messages as JSON lines on a descriptor of its own; its standard output is
its standard error, so nothing a library prints can garble them. A child dies with its parent (Linux
``PR_SET_PDEATHSIG``): a backup killed with SIGKILL leaves no writer behind, and the next run resumes
from the manifests, which only a partition's own child writes.
"""

from __future__ import annotations

import json
import os
import pickle
import queue
import signal
import subprocess
import sys
import threading

_BOOT = ("from ansible_collections.metal.kafka.plugins.module_utils import backup_parallel; "
         "backup_parallel.child_main()")
# Jobs a child runs: name -> (module, function). The function takes ``send`` and the job's arguments.
JOBS = {
    "store": ("ansible_collections.metal.kafka.plugins.module_utils.backup_kafka", "store_job"),
    "write": ("ansible_collections.metal.kafka.plugins.module_utils.backup_kafka", "write_job"),
}


class JobError(RuntimeError):
    """A child's job failed; the message is the child's own."""


def cores():
    """The cores this process may run on."""
    try:
        return max(len(os.sched_getaffinity(0)), 1)
    except AttributeError:  # not Linux
        return max(os.cpu_count() or 1, 1)


def balance(sizes, bins):
    """Keys of ``sizes`` (``{key: size}``) spread over at most ``bins`` lists of about equal total size
    (largest first, each to the lightest list); empty lists left out."""
    out = [[] for _ in range(max(bins, 1))]
    load = [0] * len(out)
    for key in sorted(sizes, key=lambda k: (-sizes[k], k)):
        i = load.index(min(load))
        out[i].append(key)
        load[i] += max(sizes[key], 1)
    return [keys for keys in out if keys]


class Pool:
    """``count`` children, started at once (so their start overlaps the parent's own work) and each given
    one job by :meth:`run`; with ``count`` 0 every job runs in this process."""

    def __init__(self, count):
        self.children = []
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
        for _ in range(count):
            r, w = os.pipe()
            proc = subprocess.Popen([sys.executable, "-c", _BOOT, str(os.getpid()), str(w)], stdin=subprocess.PIPE,
                                    env=env, pass_fds=(w,))
            os.close(w)
            self.children.append((proc, os.fdopen(r, "rb")))

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self):
        for proc, out in self.children:
            if proc.poll() is None:
                proc.kill()
            proc.wait()
            out.close()
            if proc.stdin:
                proc.stdin.close()
        self.children = []

    def run(self, jobs, on_message):
        """Runs ``jobs`` (``[(name, kwargs)]``), one per child, and returns their results in order.
        ``on_message(index, message)`` sees every other message (progress, a partition done) as it comes.
        The first failure stops every child and raises :class:`JobError` with the child's message."""
        if not self.children or len(jobs) == 1:
            results = []
            for i, (name, kwargs) in enumerate(jobs):
                results.append(_run_job(name, kwargs, lambda m, i=i: on_message(i, m)))
            self.close()
            return results
        if len(jobs) > len(self.children):
            raise ValueError(f"{len(jobs)} jobs for {len(self.children)} children")
        inbox = queue.Queue()
        for i, (proc, out) in enumerate(self.children):
            job = jobs[i] if i < len(jobs) else None
            try:
                proc.stdin.write(pickle.dumps(job))
                proc.stdin.close()
            except BrokenPipeError:
                pass  # it died at start: its reader reports the end of its output
            if job is not None:
                threading.Thread(target=_reader, args=(i, out, inbox), daemon=True).start()
        results, waiting = [None] * len(jobs), set(range(len(jobs)))
        try:
            while waiting:
                i, message = inbox.get()
                kind = message.get("kind")
                if kind == "result":
                    results[i] = message["value"]
                    waiting.discard(i)
                elif kind == "error":
                    raise JobError(message["message"])
                elif kind == "eof":
                    if i in waiting:
                        code = self.children[i][0].wait()
                        raise JobError(f"a worker process ended (exit {code}) before finishing its partitions; "
                                       "its error is above. Run the command again to go on")
                else:
                    on_message(i, message)
        finally:
            self.close()
        return results


def _reader(index, stream, inbox):
    for line in stream:
        try:
            inbox.put((index, json.loads(line)))
        except ValueError:
            continue
    inbox.put((index, {"kind": "eof"}))


def _run_job(name, kwargs, send):
    import importlib

    module, function = JOBS[name]
    return getattr(importlib.import_module(module), function)(send=send, **kwargs)


def _die_with_parent(parent):
    try:
        import ctypes

        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG
    except (OSError, AttributeError):
        pass
    if os.getppid() != parent:  # the parent died before the line above
        os._exit(1)


def child_main():
    """A child's life: die with the parent, read one job, run it, write its messages and its result."""
    parent, fd = int(sys.argv[1]), int(sys.argv[2])
    _die_with_parent(parent)
    out = os.fdopen(fd, "w", buffering=1)
    os.dup2(2, 1)  # what anything prints goes to standard error, never into the messages
    job = pickle.loads(sys.stdin.buffer.read())  # noqa: S301 - from the parent process, through a pipe
    if job is None:
        return

    def send(message):
        out.write(json.dumps(message) + "\n")

    name, kwargs = job
    try:
        send({"kind": "result", "value": _run_job(name, kwargs, send)})
    except Exception as exc:  # the parent reports it and stops the others
        text = str(exc) if type(exc).__name__ == "BackupError" else f"{type(exc).__name__}: {exc}"
        send({"kind": "error", "message": text})
    finally:
        out.flush()
