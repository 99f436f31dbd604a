# Copyright: kafka-metal contributors
# Apache License 2.0
"""Shared documentation of the admin modules' connection options (argument spec: module_utils/kafka_admin.py)."""


class ModuleDocFragment:
    DOCUMENTATION = r"""
options:
  bootstrap_servers:
    description:
      - Brokers to connect to first, as C(host:port) separated by commas.
      - The module talks to Kafka from the machine it runs on (usually the controller, by delegating
        the task to C(localhost)), through the Kafka admin API; that machine's Python needs the
        C(confluent-kafka) package.
    type: str
    required: true
  security_protocol:
    description: How to reach the brokers (C(security.protocol) of the client).
    type: str
    choices: [PLAINTEXT, SSL, SASL_PLAINTEXT, SASL_SSL]
    default: SASL_SSL
  sasl_mechanism:
    description: The SASL mechanism, with O(security_protocol) V(SASL_PLAINTEXT) or V(SASL_SSL).
    type: str
    choices: [SCRAM-SHA-512, SCRAM-SHA-256, PLAIN]
    default: SCRAM-SHA-512
  sasl_username:
    description: The SASL user; required with the SASL protocols.
    type: str
  sasl_password:
    description: The SASL user's password; required with the SASL protocols. Never reported.
    type: str
  ssl_ca_location:
    description:
      - PEM bundle of the CA(s) that signed the brokers' certificates, on the machine running the module.
      - Unset, the system's trust store is used.
    type: path
  ssl_check_hostname:
    description: Whether the broker's certificate must match the host name connected to.
    type: bool
    default: true
  ssl_certificate_location:
    description: Client certificate (PEM) for mutual TLS, on the machine running the module.
    type: path
  ssl_key_location:
    description: Private key (PEM) of O(ssl_certificate_location).
    type: path
  ssl_key_password:
    description: Password of O(ssl_key_location), when it is encrypted. Never reported.
    type: str
  timeout:
    description: Seconds to wait for each admin request (and for the cluster to answer at all).
    type: int
    default: 30
notes:
  - The principal needs ACLs for what the module reads and changes (or must be in C(super.users)).
  - Secrets (O(sasl_password), O(ssl_key_password), and a SCRAM user's password) never appear in the
    module's results, warnings or error messages.
requirements:
  - confluent-kafka >= 2.3 (Python) on the machine running the module
"""
