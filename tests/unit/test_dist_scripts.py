"""The distribution's bin/ scripts, rendered from their templates (kafka_metal/dist_bin), pass shellcheck,
and every template token is filled."""

import re
import shutil
import subprocess

import pytest
from kafka_metal import dist

VERSIONS = ("3.9.1", "4.1.1")


def rendered(version):
    classes = {t.script: f"org.example.{t.script.removesuffix('.sh').title().replace('-', '')}" for t in dist.TOOLS}
    classes["kafka-server-start.sh"] = dist.KAFKA_MAIN
    classes["zookeeper-server-start.sh"] = dist.ZOOKEEPER_MAIN
    return dist.render_bin(version, classes)


@pytest.mark.parametrize("version", VERSIONS)
def test_the_scripts_pass_shellcheck(tmp_path, version):
    shellcheck = shutil.which("shellcheck")
    assert shellcheck, "shellcheck is not installed (Debian: apt install shellcheck; .ci/install does it)"
    paths = []
    for name, text in rendered(version).items():
        assert not re.search(r"@[A-Z0-9_]+@", text), name
        path = tmp_path / name
        path.write_text(text)
        paths.append(str(path))
    proc = subprocess.run([shellcheck, "--shell=bash", "--severity=style", *paths], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-4000:]


def test_a_token_without_a_value_is_an_error():
    with pytest.raises(dist.DistError, match="no value for @MAIN_CLASS@"):
        dist.render_template("tool.sh.in", version="4.1.1", script="x.sh", heap="", args="")
