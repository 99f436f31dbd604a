"""`kafka-metal quorum remove` (plugins/cli/kafka_metal/quorum.py) against a fake cluster: which voter goes, when
it is refused, and that a controller that cannot be reached can still be removed by its node id."""

import argparse
from types import SimpleNamespace

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import quorum
from kafka_metal import quorum as cli

NOW = 1_000_000


def member(node_id, directory_id, status, seen=NOW):
    return quorum.Member(node_id=node_id, directory_id=directory_id, voter=status != "Observer", lag=0,
                         last_fetch=seen, last_caught_up=seen, status=status)


class FakeCluster:
    def __init__(self, voters, reachable=("c1", "c2", "c3")):
        self.q = quorum.Quorum(leader=1, epoch=3, members=voters)
        self.controllers = [SimpleNamespace(name=f"c{i}") for i in (1, 2, 3)]
        self.reachable = set(reachable)
        self.removed, self.commands = [], []
        self.remote = SimpleNamespace(run=lambda host, command, **kw: self.commands.append((host.name, command))
                                      or (0, "", ""))

    def host(self, name):
        return next(h for h in self.controllers if h.name == name)

    def node(self, host, fresh=False):
        if host.name not in self.reachable:
            return {"node_id": None, "directory_id": None, "props": {}, "active": False, "unreachable": "refused"}
        n = int(host.name[1:])
        return {"node_id": n, "directory_id": f"dir{n}", "props": {}, "active": True}

    def describe(self):
        return self.q

    def kraft_version(self):
        return 1

    def tools(self):
        def remove(node_id, directory_id):
            self.removed.append((node_id, directory_id))
            self.q.members = [m for m in self.q.members if m.key != (node_id, directory_id)]
        return (SimpleNamespace(remove=remove),)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        pass


def voters(seen3=NOW, seen2=NOW):
    return [member(1, "dir1", "Leader"), member(2, "dir2", "Follower", seen2), member(3, "dir3", "Follower", seen3)]


def remove(monkeypatch, fake, host=None, node_id=None, directory_id=None, keep_running=False):
    monkeypatch.setattr(cli, "Cluster", lambda args: fake)
    args = argparse.Namespace(host=host, node_id=node_id, directory_id=directory_id, keep_running=keep_running,
                              quorum="remove")
    return cli.cmd_remove(args)


def test_a_reachable_controller_is_removed_then_stopped(monkeypatch):
    fake = FakeCluster(voters())
    assert remove(monkeypatch, fake, host="c3") == 0
    assert fake.removed == [(3, "dir3")]
    assert ("c3", "systemctl stop kafka.service") in fake.commands


def test_a_removal_that_loses_the_caught_up_majority_is_refused_and_changes_nothing(monkeypatch, capsys):
    fake = FakeCluster(voters(seen2=NOW - 600_000))  # node 2 is down
    assert remove(monkeypatch, fake, host="c3") == 2
    assert fake.removed == [] and fake.commands == []
    assert "refused, nothing was changed" in capsys.readouterr().err


def test_a_controller_that_cannot_be_reached_is_removed_by_its_node_id(monkeypatch):
    fake = FakeCluster(voters(seen3=NOW - 600_000), reachable=("c1", "c2"))
    with pytest.raises(SystemExit, match="--node-id N --directory-id D"):
        remove(monkeypatch, fake, host="c3")
    assert remove(monkeypatch, fake, host="c3", node_id=3) == 0
    assert fake.removed == [(3, "dir3")] and fake.commands == []  # nothing to stop on a host that is down


def test_a_node_with_two_voters_needs_the_directory_id(monkeypatch):
    fake = FakeCluster(voters() + [member(3, "dir3-new", "Follower")])
    with pytest.raises(SystemExit, match="--directory-id"):
        remove(monkeypatch, fake, node_id=3)
    assert remove(monkeypatch, fake, node_id=3, directory_id="dir3") == 0
    assert fake.removed == [(3, "dir3")]
    with pytest.raises(SystemExit, match="name the controller"):
        remove(monkeypatch, fake)
