# Copyright: kafka-metal contributors
# Apache License 2.0
"""Listener security, SASL and authorization settings of a Kafka node.

Two outputs per node, kept apart on purpose:

* the settings that go into ``server.properties``: they name no secret, only references
  ``${file:<credentials file>:<key>}`` resolved by Kafka's FileConfigProvider when the
  process starts, so the main configuration can be shown in diffs and logs;
* the credentials file (key store password, JAAS lines with passwords), written by a task
  that never logs or diffs its content, readable only by the Kafka user.

Pure functions over plain data, unit-tested without hosts.
"""

from __future__ import annotations

PROTOCOLS = ("PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL")
MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN")
SCRAM_MECHANISMS = ("SCRAM-SHA-512", "SCRAM-SHA-256")
CLIENT_AUTH = ("none", "requested", "required")
LISTENERS = ("client", "internal", "controller")

KRAFT_AUTHORIZER = "org.apache.kafka.metadata.authorizer.StandardAuthorizer"
ZOOKEEPER_AUTHORIZER = "kafka.security.authorizer.AclAuthorizer"

_LOGIN_MODULES = {
    "SCRAM-SHA-512": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "SCRAM-SHA-256": "org.apache.kafka.common.security.scram.ScramLoginModule",
    "PLAIN": "org.apache.kafka.common.security.plain.PlainLoginModule",
}


def listener_protocols(default, overrides=None, mode="kraft"):
    """Security protocol of each listener: the default, with per-listener overrides."""
    names = LISTENERS if mode == "kraft" else LISTENERS[:2]
    overrides = overrides or {}
    return {name: str(overrides.get(name, default)).upper() for name in names}


def uses_tls(protocols):
    return any(p in ("SSL", "SASL_SSL") for p in protocols.values())


def uses_sasl(protocols):
    return any(p.startswith("SASL_") for p in protocols.values())


def security_errors(*, default_protocol, overrides, mode, sasl_mechanism, client_mechanisms, admin_user,
                    admin_password_length, client_auth, super_users):
    """Problems in the security settings, each naming the variable and the fix (empty list: fine).

    Only the admin password's length is passed in, so the secret never becomes a task argument.
    """
    errors = []
    if str(default_protocol).upper() not in PROTOCOLS:
        errors.append(f"kafka_security_protocol is {default_protocol!r}; use one of {', '.join(PROTOCOLS)}")
    if not isinstance(overrides, dict):
        return errors + ["kafka_listener_protocols must be a mapping such as {client: SASL_SSL}"]
    names = LISTENERS if mode == "kraft" else LISTENERS[:2]
    for name, value in overrides.items():
        if name not in names:
            errors.append(f"kafka_listener_protocols has unknown listener {name!r}; "
                          f"the listeners are {', '.join(names)}")
        elif str(value).upper() not in PROTOCOLS:
            errors.append(f"kafka_listener_protocols.{name} is {value!r}; use one of {', '.join(PROTOCOLS)}")
    if errors:
        return errors
    protocols = listener_protocols(default_protocol, overrides, mode)
    for name in names[1:]:
        if protocols[name] == "SSL":
            errors.append(f"the {name} listener cannot use SSL without SASL (kafka-metal authenticates "
                          f"brokers and controllers with SASL); use SASL_SSL")
    if protocols["internal"].startswith("SASL_") != (mode != "kraft" or protocols["controller"].startswith("SASL_")):
        errors.append("the internal and controller listeners must both use SASL or both not; "
                      "set kafka_listener_protocols for both")
    if sasl_mechanism not in SCRAM_MECHANISMS + ("PLAIN",):
        errors.append(f"kafka_sasl_mechanism is {sasl_mechanism!r}; use one of {', '.join(MECHANISMS)}")
    if not isinstance(client_mechanisms, list) or not client_mechanisms:
        errors.append("kafka_sasl_client_mechanisms must be a non-empty list, e.g. [SCRAM-SHA-512]")
    else:
        for m in client_mechanisms:
            if m not in MECHANISMS:
                errors.append(f"kafka_sasl_client_mechanisms has {m!r}; use any of {', '.join(MECHANISMS)}")
    if client_auth not in CLIENT_AUTH:
        errors.append(f"kafka_tls_client_auth is {client_auth!r}; use one of {', '.join(CLIENT_AUTH)}")
    if client_auth != "none" and protocols["client"] not in ("SSL", "SASL_SSL"):
        errors.append("kafka_tls_client_auth asks for client certificates but the client listener uses "
                      f"{protocols['client']}; use SSL or SASL_SSL for it")
    if not isinstance(super_users, list) or not all(isinstance(u, str) and ":" in u for u in super_users):
        errors.append("kafka_super_users must be a list of principals such as ['User:ops']")
    if uses_sasl(protocols):
        if not admin_user or not isinstance(admin_user, str) or any(c in admin_user for c in ',="\\ '):
            errors.append("kafka_admin_user must be a plain user name (no spaces, commas, quotes)")
        length = int(admin_password_length or 0)
        if not length:
            errors.append("kafka_admin_password is empty but SASL is enabled; set it, preferably from "
                          "ansible-vault (e.g. vault_kafka_admin_password)")
        elif length < 12:
            errors.append("kafka_admin_password is shorter than 12 characters; use a long random secret")
    return errors


def jaas(mechanism, username=None, password=None, users=None):
    """A JAAS line; values are quoted with the escapes Kafka's JAAS parser understands."""
    def q(value):
        return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'
    parts = [_LOGIN_MODULES[mechanism], "required"]
    if username is not None:
        parts += [f"username={q(username)}", f"password={q(password)}"]
    for name, secret in sorted((users or {}).items()):
        parts.append(f"user_{name}={q(secret)}")
    return " ".join(parts) + ";"


def node_security(*, roles, mode, protocols, sasl_mechanism, client_mechanisms, admin_user, admin_password,
                  super_users, tls_dir, credentials_file, keystore_password, client_auth="none",
                  principal_mapping_rules="", authorizer=None, migration="none"):
    """Settings for ``server.properties`` and the credentials file of one node.

    ``migration``: the phase of a ZooKeeper-mode cluster's migration to KRaft. In its phases the controllers
    are KRaft controllers that also reach the ZooKeeper-mode brokers on their internal listener; brokers
    talk to the controllers from ``dual_write`` on, and keep ZooKeeper's authorizer until ``kraft_brokers``.
    Returns ``(settings, credentials)``; ``settings`` holds no secret.
    """
    roles = list(roles)
    # a migration's controllers, and its brokers from dual write on, speak KRaft; the brokers keep ZooKeeper's
    # authorizer until they are KRaft brokers
    migrating = mode == "zookeeper" and migration not in ("none", None) and (
        "controller" in roles or migration in ("dual_write", "kraft_brokers"))
    if migrating:
        mode = "kraft"
        if "broker" in roles and migration == "dual_write":
            authorizer = authorizer or ZOOKEEPER_AUTHORIZER
    broker = "broker" in roles
    controller = "controller" in roles
    settings = {}
    credentials = {}

    def ref(key):
        return "${file:" + credentials_file + ":" + key + "}"

    names = ["CLIENT", "INTERNAL"] if broker or mode != "kraft" else []
    if mode == "kraft":
        names.append("CONTROLLER")
    settings["listener.security.protocol.map"] = ",".join(f"{n}:{protocols[n.lower()]}" for n in names)

    if uses_tls(protocols):
        settings.update({
            # PEM key store: the encrypted key and its chain, as kafka_certificate writes it
            "ssl.keystore.type": "PEM",
            "ssl.keystore.location": f"{tls_dir}/keystore.pem",
            "ssl.key.password": ref("ssl.key.password"),
            "ssl.truststore.type": "PEM",
            "ssl.truststore.location": f"{tls_dir}/truststore.pem",
            "ssl.endpoint.identification.algorithm": "https",
            "ssl.enabled.protocols": "TLSv1.3,TLSv1.2",
        })
        credentials["ssl.key.password"] = keystore_password
        if broker and protocols["client"] in ("SSL", "SASL_SSL"):
            settings["listener.name.client.ssl.client.auth"] = client_auth
            if principal_mapping_rules:
                settings["ssl.principal.mapping.rules"] = principal_mapping_rules

    sasl = uses_sasl(protocols)
    if sasl:
        if broker:
            client_mechs = list(dict.fromkeys(client_mechanisms))
            settings["sasl.enabled.mechanisms"] = ",".join(dict.fromkeys(client_mechs + [sasl_mechanism]))
            settings["listener.name.client.sasl.enabled.mechanisms"] = ",".join(client_mechs)
            settings["listener.name.internal.sasl.enabled.mechanisms"] = sasl_mechanism
            settings["sasl.mechanism.inter.broker.protocol"] = sasl_mechanism
            key = f"listener.name.internal.{sasl_mechanism.lower()}.sasl.jaas.config"
            settings[key] = ref("internal.jaas")
            credentials["internal.jaas"] = jaas(
                sasl_mechanism, admin_user, admin_password,
                {admin_user: admin_password} if sasl_mechanism == "PLAIN" else None)
            if protocols["client"].startswith("SASL_"):
                for mech in client_mechs:
                    key = f"listener.name.client.{mech.lower()}.sasl.jaas.config"
                    if mech == "PLAIN":
                        # PLAIN checks passwords against the JAAS entry: only the admin user can log in
                        settings[key] = ref("client.plain.jaas")
                        credentials["client.plain.jaas"] = jaas("PLAIN", users={admin_user: admin_password})
                    else:
                        settings[key] = jaas(mech)
        if mode == "kraft":
            # SCRAM credentials live in the metadata log, which the controllers serve: the controller
            # listener itself authenticates with PLAIN (Kafka's documented KRaft limitation).
            settings["sasl.mechanism.controller.protocol"] = "PLAIN"
            settings["listener.name.controller.sasl.enabled.mechanisms"] = "PLAIN"
            settings["listener.name.controller.plain.sasl.jaas.config"] = ref("controller.jaas")
            credentials["controller.jaas"] = jaas(
                "PLAIN", admin_user, admin_password, {admin_user: admin_password} if controller else None)
        if not broker:
            settings["sasl.enabled.mechanisms"] = "PLAIN"

    if migrating and controller:
        # the controllers send LeaderAndIsr and UpdateMetadata to the ZooKeeper-mode brokers
        settings["listener.security.protocol.map"] = (f"INTERNAL:{protocols['internal']},"
                                                      + settings["listener.security.protocol.map"])
        if sasl:
            settings["sasl.mechanism.inter.broker.protocol"] = sasl_mechanism
            # Kafka wants the inter-broker mechanism among the enabled ones (the controller listener keeps its
            # own list, PLAIN)
            settings["sasl.enabled.mechanisms"] = ",".join(dict.fromkeys(["PLAIN", sasl_mechanism]))
            settings[f"listener.name.internal.{sasl_mechanism.lower()}.sasl.jaas.config"] = ref("internal.jaas")
            credentials["internal.jaas"] = jaas(sasl_mechanism, admin_user, admin_password)
    if credentials:
        settings["config.providers"] = "file"
        settings["config.providers.file.class"] = "org.apache.kafka.common.config.provider.FileConfigProvider"
    if sasl or client_auth != "none":
        settings["authorizer.class.name"] = authorizer or (KRAFT_AUTHORIZER if mode == "kraft"
                                                           else ZOOKEEPER_AUTHORIZER)
        settings["allow.everyone.if.no.acl.found"] = "false"
        supers = ([f"User:{admin_user}"] if sasl else []) + [u for u in super_users if u != f"User:{admin_user}"]
        settings["super.users"] = ";".join(supers)
    return settings, credentials


def client_config(*, protocol, sasl_mechanism, username, password, ca_file, check_hostname=True):
    """librdkafka / confluent-kafka settings for an admin client of this cluster."""
    conf = {"security.protocol": protocol.lower()}
    if protocol.startswith("SASL_"):
        conf.update({"sasl.mechanism": sasl_mechanism, "sasl.username": username, "sasl.password": password})
    if protocol in ("SSL", "SASL_SSL"):
        conf["ssl.ca.location"] = ca_file
        conf["ssl.endpoint.identification.algorithm"] = "https" if check_hostname else "none"
    return conf


def scram_salted(mechanism, password, iterations, salt):
    """SCRAM SaltedPassword (RFC 5802 Hi()) as Kafka stores it: PBKDF2-HMAC over the UTF-8 password."""
    import hashlib

    digest = {"SCRAM-SHA-512": "sha512", "SCRAM-SHA-256": "sha256"}[mechanism]
    return hashlib.pbkdf2_hmac(digest, password.encode(), salt, int(iterations))


def storage_scram_argument(mechanism, name, password, iterations, salt):
    """``kafka-storage format --add-scram`` value carrying the salted password, not the password itself."""
    import base64

    if not name or any(c in name for c in ',="[]\\\' '):
        raise ValueError("SCRAM user names for bootstrap must not contain spaces, commas, quotes or brackets")
    if int(iterations) < 4096:
        raise ValueError("SCRAM iterations must be at least 4096 (Kafka's minimum)")
    salted = scram_salted(mechanism, password, iterations, salt)
    return (f'{mechanism}=[name={name},salt="{base64.b64encode(salt).decode()}",'
            f'saltedpassword="{base64.b64encode(salted).decode()}",iterations={int(iterations)}]')
