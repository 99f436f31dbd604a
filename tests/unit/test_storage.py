import pytest
from ansible_collections.metal.kafka.plugins.module_utils import storage

CID = "MkU3OEVBNTcwNTJENDM2Qk"


def write_meta(path, cluster_id=CID, node_id="1"):
    path.mkdir(parents=True, exist_ok=True)
    (path / "meta.properties").write_text(f"version=1\nnode.id={node_id}\ncluster.id={cluster_id}\n")


def test_missing_and_empty_dirs_are_formatted(tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "fs" / "lost+found").mkdir(parents=True)
    states = [storage.inspect_dir(str(tmp_path / n)) for n in ("missing", "empty", "fs")]
    assert storage.plan(states, CID, 1) == {"format": [str(tmp_path / n) for n in ("missing", "empty", "fs")],
                                            "formatted": []}


def test_formatted_with_same_ids_is_left_alone(tmp_path):
    write_meta(tmp_path / "d")
    assert storage.plan([storage.inspect_dir(str(tmp_path / "d"))], CID, 1) == {
        "format": [], "formatted": [str(tmp_path / "d")]}


def test_partially_formatted_formats_only_the_empty_one(tmp_path):
    write_meta(tmp_path / "a")
    states = [storage.inspect_dir(str(tmp_path / "a")), storage.inspect_dir(str(tmp_path / "b"))]
    assert storage.plan(states, CID, 1)["format"] == [str(tmp_path / "b")]


def test_other_cluster_refused(tmp_path):
    write_meta(tmp_path / "d", cluster_id="OtherClusterIdxxxxxxxx")
    with pytest.raises(storage.StorageError, match="belongs to cluster OtherClusterIdxxxxxxxx, not " + CID):
        storage.plan([storage.inspect_dir(str(tmp_path / "d"))], CID, 1)


def test_other_node_refused(tmp_path):
    write_meta(tmp_path / "d", node_id="7")
    with pytest.raises(storage.StorageError, match="formatted for node 7, but this host's kafka_node_id is 1"):
        storage.plan([storage.inspect_dir(str(tmp_path / "d"))], CID, 1)


def test_non_empty_without_meta_refused(tmp_path):
    (tmp_path / "d").mkdir()
    (tmp_path / "d" / "precious.log").write_text("data")
    with pytest.raises(storage.StorageError, match=r"is not empty \(precious.log\) and has no meta.properties"):
        storage.plan([storage.inspect_dir(str(tmp_path / "d"))], CID, 1)


def test_file_instead_of_dir_refused(tmp_path):
    (tmp_path / "f").write_text("x")
    with pytest.raises(storage.StorageError, match="not a directory"):
        storage.plan([storage.inspect_dir(str(tmp_path / "f"))], CID, 1)


def test_cluster_ids(tmp_path):
    write_meta(tmp_path / "a")
    states = [storage.inspect_dir(str(tmp_path / "a")), storage.inspect_dir(str(tmp_path / "b"))]
    assert storage.cluster_ids(states) == [CID]
