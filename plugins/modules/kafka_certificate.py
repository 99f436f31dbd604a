#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_certificate
short_description: Issue a Kafka node's TLS certificate and assemble its PEM keystore, on the controller
version_added: 0.1.0
description:
  - An action that runs on the controller only, for the current host; it never connects to the host.
    Deliver the files it reports with M(ansible.builtin.copy).
  - Keeps a private CA in O(ca_dir) (created on first use; C(ca.key) never leaves the controller) and,
    for O(host), writes C(<ca_dir>/hosts/<host>/keystore.pem) (0600), C(truststore.pem) and
    C(key-password) (0600).
  - C(keystore.pem) is for C(ssl.keystore.type=PEM) and C(ssl.keystore.location); it holds the private key
    as an encrypted PKCS#8 C(ENCRYPTED PRIVATE KEY) block (pbeWithSHA1And3-KeyTripleDES-CBC, which Java 17
    reads; it does not read PBES2), then the certificate and any intermediates. C(ssl.key.password) is
    the password in C(key-password), also returned as RV(key_password).
  - C(truststore.pem) (the CA certificate, or the given CA bundle) is for C(ssl.truststore.type=PEM) and
    C(ssl.truststore.location).
  - Host keys are EC P-256 by default (RSA 3072 with O(key_type=rsa)); certificates carry the host as
    common name, exactly the wanted names as subjectAltNames, and extendedKeyUsage serverAuth and clientAuth.
  - A certificate is reissued only when there is none, it is not signed by the current CA, its names differ
    from O(dns_names) and O(ip_addresses), its key type differs from O(key_type), or it expires within
    O(renew_before_days). The keystore is rebuilt only when its key, certificates or password change, so
    re-runs report no change and copying the files changes nothing.
  - With O(byo), a certificate issued elsewhere is checked instead (key matches, chain verifies to the CA
    bundle, names covered, dates valid) and fails with every problem listed; no CA is created or used.
  - Parallel hosts are safe; the CA is created once, under a file lock in O(ca_dir).
options:
  ca_dir:
    description:
      - Directory on the controller for the CA (C(ca.key), C(ca.crt)) and the per-host files under C(hosts/).
        C(~) is expanded; a relative path is relative to the playbook's directory. Created 0700.
      - With O(byo), only the per-host files are written here.
      - Back it up; losing C(ca.key) means a new CA that no existing node trusts.
    type: str
    required: true
  ca_passphrase:
    description:
      - Passphrase that encrypts C(ca.key) when the CA is created, and decrypts it afterwards.
      - Without it, C(ca.key) is stored unencrypted (0600 in a 0700 directory).
    type: str
  ca_common_name:
    description: Common name of the CA, used only when it is created. Defaults to C(metal.kafka CA) and a random suffix.
    type: str
  host:
    description:
      - Name of the host, used as the certificate's common name and the per-host directory's name.
      - Defaults to C(inventory_hostname).
    type: str
  dns_names:
    description:
      - DNS names the certificate must carry (every name clients or other nodes use to reach this host,
        as in C(advertised.listeners)). A name in C(*.example.com) form is a wildcard.
      - When neither this nor O(ip_addresses) is given (and O(byo) is not), the certificate is for O(host)
        (as an address when O(host) is one).
    type: list
    elements: str
    default: []
  ip_addresses:
    description: IP addresses the certificate must carry (needed when clients connect by address).
    type: list
    elements: str
    default: []
  valid_days:
    description: Validity of a newly issued certificate, in days (at most 825; cut short when the CA expires earlier).
    type: int
    default: 825
  renew_before_days:
    description:
      - Reissue a certificate that expires within this many days. Must be less than O(valid_days).
      - With O(byo), a warning is given instead.
    type: int
    default: 30
  key_password:
    description:
      - Password that encrypts the private key in C(keystore.pem) (C(ssl.key.password)); printable ASCII
        without spaces.
      - When empty, one is generated on first use, kept in C(<ca_dir>/hosts/<host>/key-password) and reused.
    type: str
  key_type:
    description: Key type of newly issued host keys (and of the CA when it is created).
    type: str
    choices: [ec, rsa]
    default: ec
  byo:
    description: Bring your own certificate, issued by another CA, instead of the private CA.
    type: dict
    suboptions:
      ca_bundle:
        description: Controller path of the PEM certificate(s) of the CA(s) to trust; becomes C(truststore.pem).
        type: str
        required: true
      certificate:
        description: Controller path of the host's PEM certificate; it may be followed by intermediates.
        type: str
        required: true
      key:
        description: Controller path of the certificate's PEM private key (RSA or EC; PKCS#8, PKCS#1 or SEC1).
        type: str
        required: true
      key_passphrase:
        description: Passphrase of O(byo.key) when it is encrypted.
        type: str
      chain:
        description: Controller path of PEM intermediate certificates, when they are not in O(byo.certificate).
        type: str
attributes:
  check_mode:
    support: full
    description: Reports what would be created, issued or rebuilt, and writes nothing (not even the CA).
  diff_mode:
    support: none
    description: Returns no diff (the result says what was issued or rebuilt, and why).
author:
  - kafka-metal maintainers (@kafka-metal)
notes:
  - >-
    The result holds the key password in RV(key_password), and nowhere else. Run the task with
    C(no_log: true) and register it, so that the password never reaches a log; then deliver
    RV(keystore) and RV(truststore) with M(ansible.builtin.copy).
  - Key material (private keys, passphrases) never appears in messages or other return values.
  - Rotating the CA is not automated; replacing C(ca.key) and C(ca.crt) reissues every host's certificate
    against the new CA, which the old nodes do not trust until they have the new truststore.
"""

EXAMPLES = r"""
- name: Issue this node's certificate on the controller
  metal.kafka.kafka_certificate:
    ca_dir: ~/.kafka-metal/pki/prod
    ca_passphrase: "{{ vault_kafka_ca_passphrase }}"
    dns_names:
      - "{{ inventory_hostname }}"
      - "{{ ansible_fqdn }}"
    ip_addresses:
      - "{{ ansible_default_ipv4.address }}"
  register: kafka_tls
  no_log: true

- name: Check a certificate issued by the company CA, and assemble the keystore
  metal.kafka.kafka_certificate:
    ca_dir: ~/.kafka-metal/pki/prod
    dns_names: ["{{ inventory_hostname }}"]
    byo:
      ca_bundle: files/tls/company-ca.pem
      certificate: "files/tls/{{ inventory_hostname }}.crt"
      key: "files/tls/{{ inventory_hostname }}.key"
      chain: files/tls/intermediate.pem
  register: kafka_tls
  no_log: true
"""

RETURN = r"""
changed:
  description: True only when the CA was created, a certificate was (re)issued, or a file was rewritten.
  returned: always
  type: bool
reason:
  description: >-
    Why, in a few words, for example C(issued: names changed: +10.0.0.5 -old.example) or
    C(up to date (expires in 700 days)).
  returned: success
  type: str
keystore:
  description: Controller path of C(keystore.pem), to copy to the host.
  returned: success
  type: str
truststore:
  description: Controller path of C(truststore.pem), to copy to the host.
  returned: success
  type: str
key_password_file:
  description: Controller path of the file holding the key password (0600).
  returned: success
  type: str
key_password:
  description:
    - The password of the key in C(keystore.pem), for C(ssl.key.password). Secret; see the notes on C(no_log).
    - Empty in check mode when none exists yet.
  returned: success
  type: str
not_after:
  description: Expiry of the certificate, ISO 8601 in UTC; null in check mode when it would be (re)issued.
  returned: success
  type: str
ca_not_after:
  description:
    - Expiry of the CA certificate the node trusts (with O(byo), the soonest among the CA bundle's), ISO 8601 in UTC.
    - Null in check mode when the CA would be created.
  returned: success
  type: str
names:
  description: DNS names and IP addresses of the certificate (with O(byo), its subjectAltNames).
  returned: success
  type: list
  elements: str
fingerprint:
  description:
    - SHA-256 fingerprint of the certificate, colon-separated hex.
    - Null in check mode when it would be (re)issued.
  returned: success
  type: str
ca_created:
  description: Whether the CA was created by this task.
  returned: success
  type: bool
ca_certificate:
  description: Controller path of the CA certificate (not with O(byo)).
  returned: success
  type: str
errors:
  description: Every problem found in a bring-your-own certificate.
  returned: failure
  type: list
  elements: str
"""
