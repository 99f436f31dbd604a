#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_node_files
short_description: Read a Kafka node's configuration, identity and certificates for a backup, secrets removed
version_added: 0.1.0
description:
  - Reads each file of O(paths) (C(server.properties), the C(meta.properties) of every log directory and
    of the metadata directory, certificates) and returns its content, sanitized, with its mode, owner,
    size and digest, so a backup can keep it (decode C(content_b64) with C(ansible.builtin.b64decode));
    never changes anything.
  - Java properties files (C(.properties), C(.conf), C(.cfg), and any other text that is not PEM) keep every
    line byte for byte except the values of secret entries, which become C(<redacted>) (a value continued
    over several lines loses all of them). An entry is secret when its name looks secret (C(password),
    C(secret), C(key), C(token), C(credential), C(*.jaas.config)..., case-insensitive; not names ending in
    C(.location), C(.type), C(.algorithm), C(.serializer), C(.class) and the like) or when its value holds a
    JAAS secret option (C(password="...")) or a private key. A value that is only a config-provider
    reference, such as C(${file:/etc/kafka/credentials.properties:ssl.key.password}), is not a secret
    and stays.
  - PEM files lose their C(PRIVATE KEY) blocks (RSA, EC, ENCRYPTED, PKCS#8...), each replaced by a comment
    line; certificates stay.
  - Binary keystores (C(.jks), C(.p12), C(.pfx), C(.keystore), or anything that is not UTF-8 text) are
    never returned.
  - Nothing the module returns, warns or fails with holds a secret value.
options:
  paths:
    description:
      - Files to read, in the order they are reported. A missing file is reported as such, not an error;
        a directory or another non-regular file, or one that cannot be opened, fails the task.
    type: list
    elements: path
    required: true
  never_read:
    description:
      - Files that are never opened, not even examined (such as the node's credentials file and
        C(admin.properties)); a path of O(paths) that is one of them, directly or through a symbolic link,
        is reported with kind C(refused).
    type: list
    elements: path
    default: []
  max_size:
    description: Largest file, in bytes, that is read; a bigger one is reported with kind C(too-large).
    type: int
    default: 1048576
  dest:
    description:
      - A directory on the controller (the action plugin writes there, not the node). Each returned file is
        stored at O(dest) followed by its path on the node, at mode 0600 in directories of mode 0700, and
        only when its content differs from the stored copy; C(content_b64) is then left out of the result.
      - Without it, nothing is written and the content is returned.
    type: path
attributes:
  action:
    support: full
    description: The action plugin stores the files on the controller when O(dest) is set.
  check_mode:
    support: full
    description: Reads in check mode too; with O(dest), reports which files would be stored and writes none.
  diff_mode:
    support: none
    description: The stored files are sanitized copies; they are not shown.
author:
  - kafka-metal maintainers (@kafka-metal)
"""

EXAMPLES = r"""
- name: Read the node's configuration, identity and certificates for the backup
  metal.kafka.kafka_node_files:
    paths:
      - /etc/kafka/server.properties
      - /var/lib/kafka/data/meta.properties
      - /var/lib/kafka/metadata/meta.properties
      - /etc/kafka/tls/keystore.pem
      - /etc/kafka/tls/truststore.pem
    never_read:
      - /etc/kafka/credentials.properties
      - /etc/kafka/admin.properties
  register: __backup_node_files
"""

RETURN = r"""
stored:
  description: With O(dest), the files written on the controller (or that would be, in check mode).
  returned: when dest is set
  type: list
  elements: str
files:
  description: One entry per distinct path of O(paths), in order.
  returned: always
  type: list
  elements: dict
  contains:
    path:
      description: The path as given.
      type: str
    kind:
      description:
        - C(properties) or C(pem) (content returned, sanitized); C(binary-skipped) (a keystore or other
          binary file, content not returned); C(missing); C(too-large) (bigger than O(max_size));
          C(refused) (listed in O(never_read), not opened).
      type: str
    mode:
      description: Permission bits as an octal string; null when missing or refused.
      type: str
    owner:
      description: Owning user's name (the uid when it has none); null when missing or refused.
      type: str
    group:
      description: Owning group's name (the gid when it has none); null when missing or refused.
      type: str
    size:
      description: Size of the file on the host in bytes (not of the returned content); null when missing or refused.
      type: int
    sha256:
      description: Digest of the returned (sanitized) content; null when no content is returned.
      type: str
    content_b64:
      description: The sanitized content, base64-encoded; null when no content is returned.
      type: str
    redacted:
      description: Names of the properties whose value was replaced by C(<redacted>).
      type: list
      elements: str
    dropped:
      description: Number of private key blocks dropped.
      type: int
  sample:
    - path: /etc/kafka/server.properties
      kind: properties
      mode: "0640"
      owner: root
      group: kafka
      size: 161
      sha256: 8d48f9e6b03d9ff86a2900df5314755c80f0f51255097a3905680214274fe850
      content_b64: bm9kZS5pZD0xCmxpc3RlbmVyLm5hbWUuY2xpZW50LnBsYWluLnNhc2wuamFhcy5jb25maWc9PHJlZGFjdGVkPgo=
      redacted: [listener.name.client.plain.sasl.jaas.config]
      dropped: 0
    - path: /etc/kafka/credentials.properties
      kind: refused
      mode: null
      owner: null
      group: null
      size: null
      sha256: null
      content_b64: null
      redacted: []
      dropped: 0
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils.node_files import (
    DEFAULT_MAX_SIZE,
    NodeFilesError,
    read_node_files,
)


def build_module():
    return AnsibleModule(
        argument_spec=dict(
            paths=dict(type="list", elements="path", required=True),
            never_read=dict(type="list", elements="path", default=[]),
            max_size=dict(type="int", default=DEFAULT_MAX_SIZE),
            dest=dict(type="path"),  # taken by the action plugin; the module never writes
        ),
        supports_check_mode=True,
    )


def run(module):
    params = module.params
    try:
        files = read_node_files(params["paths"], params["never_read"], params["max_size"])
    except NodeFilesError as exc:  # its messages name a path and the reason, never content
        module.fail_json(msg=str(exc))
    except Exception as exc:  # an unexpected error's text could quote content: only its type leaves
        module.fail_json(msg=f"reading the node's files failed unexpectedly ({type(exc).__name__})")
    module.exit_json(changed=False, files=files)


def main():
    run(build_module())


if __name__ == "__main__":
    main()
