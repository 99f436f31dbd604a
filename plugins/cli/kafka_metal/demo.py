"""The demo cluster's settings and what a client needs to use it.

``kafka-metal demo`` builds the cluster as kafka-metal ships it: TLS on every listener from the cluster's own
CA, SCRAM-SHA-512, ACLs. Its state lives in one root-only directory (``/var/lib/kafka-metal/demo`` beside the
lab's state): the passwords (made once, kept for the next run), the extra variables handed to ``site.yml``,
the CA, a client configuration for Kafka's console tools and those tools themselves (unpacked from the
distribution archive the demo installed). Passwords are written to files readable by root only and never
printed; the printed commands name the files.
"""

from __future__ import annotations

import json
import os
import secrets
import shlex
import tarfile
from pathlib import Path

import yaml

CLUSTER_NAME = "kafka-metal-demo"
CLIENT_USER = "demo-client"
TOPIC = "demo"
GROUP_PREFIX = "demo-"
MECHANISM = "SCRAM-SHA-512"


def _write_private(path: Path, text: str) -> None:
    """Write a file only root can read (atomically; never readable by others, not even while it is written)."""
    from ansible_collections.metal.kafka.plugins.module_utils.files import write_file

    write_file(str(path), text.encode(), 0o600)


class Demo:
    def __init__(self, directory: Path, secured: bool = True, brokers: int = 3):
        self.dir = Path(directory)
        self.secured = secured
        self.brokers = brokers
        self.dir.mkdir(parents=True, exist_ok=True)
        os.chmod(self.dir, 0o700)
        self.ca_dir = self.dir / "pki"
        self.protocol = "SASL_SSL" if secured else "PLAINTEXT"
        self._passwords = self._load_passwords() if secured else {}

    def _load_passwords(self) -> dict:
        path = self.dir / "passwords.json"
        known = json.loads(path.read_text()) if path.exists() else {}
        wanted = {"admin": known.get("admin") or secrets.token_urlsafe(24),
                  CLIENT_USER: known.get(CLIENT_USER) or secrets.token_urlsafe(24)}
        if wanted != known:
            _write_private(path, json.dumps(wanted, indent=2) + "\n")
        return wanted

    def variables(self) -> dict:
        """The extra variables for site.yml: the shipped security (or none), a user, a topic and its ACLs."""
        rf = min(3, self.brokers)
        topic = {"name": TOPIC, "partitions": 6, "replication_factor": rf,
                 "configs": {"min.insync.replicas": str(max(1, min(2, rf - 1)))}}
        out = {"kafka_cluster_name": CLUSTER_NAME, "kafka_tls_ca_dir": str(self.ca_dir),
               "kafka_security_protocol": self.protocol, "kafka_topics": [topic]}
        if self.secured:
            principal = f"User:{CLIENT_USER}"
            acl = {"principal": principal, "resource_type": "topic", "resource_name": TOPIC}
            out.update({
                "kafka_admin_password": self._passwords["admin"],
                "kafka_users": [{"name": CLIENT_USER, "password": self._passwords[CLIENT_USER]}],
                "kafka_acls": [dict(acl, operation=op) for op in ("write", "read", "describe")]
                + [{"principal": principal, "operation": "read", "resource_type": "group",
                    "resource_name": GROUP_PREFIX, "pattern_type": "prefixed"}],
            })
        return out

    def write_vars(self) -> Path:
        path = self.dir / "vars.yml"
        _write_private(path, "# written by kafka-metal demo: the demo cluster's settings (secrets included)\n"
                       + yaml.safe_dump(self.variables(), sort_keys=True))
        return path

    @property
    def ca_file(self) -> Path:
        return self.ca_dir / "ca.crt"

    def admin_client_settings(self) -> dict:
        """librdkafka settings for the smoke check, as the admin user (it creates its own topic)."""
        if not self.secured:
            return {}
        return {"security.protocol": "SASL_SSL", "sasl.mechanisms": MECHANISM, "sasl.username": "admin",
                "sasl.password": self._passwords["admin"], "ssl.ca.location": str(self.ca_file)}

    def client_properties(self, bootstrap: str) -> Path:
        """A client configuration for Kafka's Java tools, as the demo's client user (root-only file)."""
        lines = [f"bootstrap.servers={bootstrap}", f"security.protocol={self.protocol}"]
        if self.secured:
            password = self._passwords[CLIENT_USER].replace("\\", "\\\\").replace('"', '\\"')
            lines += [f"sasl.mechanism={MECHANISM}",
                      "sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required "
                      f'username="{CLIENT_USER}" password="{password}";',
                      "ssl.truststore.type=PEM", f"ssl.truststore.location={self.ca_file}"]
        path = self.dir / "client.properties"
        _write_private(path, "\n".join(lines) + "\n")
        return path

    def tools(self, archive: Path) -> Path:
        """Kafka's command-line tools, unpacked from the installed distribution into the demo directory."""
        home = self.dir / Path(archive).name.removesuffix(".tgz")
        if not (home / "bin" / "kafka-console-producer.sh").exists():
            with tarfile.open(archive) as tar:
                tar.extractall(self.dir, filter="data")
        return home

    def client_instructions(self, bootstrap: str, archive: Path) -> str:
        config = self.client_properties(bootstrap)
        bin_dir = self.tools(archive) / "bin"
        q = shlex.quote
        who = f"as {CLIENT_USER} over {self.protocol}" if self.secured else f"over {self.protocol}"
        lines = [
            "",
            f"client configuration ({who}): {config}",
            f"produce to topic {TOPIC} (one record per line, Ctrl-D to end):",
            f"  {q(str(bin_dir / 'kafka-console-producer.sh'))} --bootstrap-server {q(bootstrap)} --topic {TOPIC} "
            f"--producer.config {q(str(config))}",
            "consume it from the beginning:",
            f"  {q(str(bin_dir / 'kafka-console-consumer.sh'))} --bootstrap-server {q(bootstrap)} --topic {TOPIC} "
            f"--group {GROUP_PREFIX}console --from-beginning --consumer.config {q(str(config))}",
        ]
        if self.secured:
            lines += [f"({CLIENT_USER} may write and read topic {TOPIC} and use groups named {GROUP_PREFIX}*; "
                      f"its password and the admin's are in {self.dir / 'passwords.json'}, root only; the "
                      f"cluster's CA certificate is {self.ca_file})"]
        lines.append("the tools need Java 17 on this machine (Debian: apt install openjdk-17-jre-headless)")
        return "\n".join(lines)
