# Copyright: kafka-metal contributors
# Apache License 2.0
"""Shared documentation of the options with which the Kafka protocol probe reaches a listener."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  security_protocol:
    description:
      - Security protocol of the probed listener. With SASL, the probe authenticates before asking for
        metadata (Kafka answers ApiVersions before authentication, so only TLS applies to that request).
    type: str
    choices: [PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL]
    default: PLAINTEXT
  ca_file:
    description: CA bundle (PEM) on the host that verifies the listener's certificate.
    type: path
  server_hostname:
    description:
      - Name the listener's certificate must carry; the probe may connect to another address (such as
        127.0.0.1) and still verify this name, so hostname verification stays on. Defaults to the
        address connected to.
    type: str
  sasl_mechanism:
    description: SASL mechanism of the probe.
    type: str
    choices: [SCRAM-SHA-512, SCRAM-SHA-256, PLAIN]
    default: SCRAM-SHA-512
  sasl_username:
    description: SASL user of the probe.
    type: str
  sasl_password:
    description: SASL password of the probe; never logged.
    type: str
"""
