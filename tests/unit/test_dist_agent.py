"""`kafka-metal dist agent` (plugins/cli/kafka_metal/dist_agent.py): what it checks before it asks Maven."""

import hashlib

import pytest
from kafka_metal import dist_agent
from kafka_metal.dist_base import DistError


def test_a_jar_that_matches_its_checksum_file_is_reused_without_maven(tmp_path, monkeypatch):
    jar = tmp_path / "jmx_prometheus_javaagent-1.0.1.jar"
    jar.write_bytes(b"agent")
    digest = hashlib.sha256(b"agent").hexdigest()
    (tmp_path / (jar.name + ".sha256")).write_text(f"{digest}  {jar.name}\n")
    monkeypatch.setattr(dist_agent, "find_command", lambda *a: pytest.fail("Maven was run"))
    said = []
    assert dist_agent.fetch_agent("1.0.1", repo="https://repo.example/maven2", out_dir=tmp_path,
                                  progress=said.append) == (jar, digest)
    assert said == [f"{jar} is there and matches its checksum file"]


def test_a_jar_that_does_not_match_is_fetched_again(tmp_path, monkeypatch):
    jar = tmp_path / "jmx_prometheus_javaagent-1.0.1.jar"
    jar.write_bytes(b"tampered")
    (tmp_path / (jar.name + ".sha256")).write_text(f"{hashlib.sha256(b'agent').hexdigest()}  {jar.name}\n")

    def no_maven(*args):
        raise DistError("mvn is not installed")

    monkeypatch.setattr(dist_agent, "find_command", no_maven)
    with pytest.raises(DistError, match="mvn is not installed"):
        dist_agent.fetch_agent("1.0.1", repo="https://repo.example/maven2", out_dir=tmp_path, progress=lambda m: None)


@pytest.mark.parametrize("version", ["", "1.0", "latest", "1.0.1;rm"])
def test_a_version_must_be_three_numbers(tmp_path, version):
    with pytest.raises(DistError, match="--version must look like 1.0.1"):
        dist_agent.fetch_agent(version, out_dir=tmp_path)
