# Copyright: kafka-metal contributors
# Apache License 2.0
"""Declarative Kafka administration (topics, ACLs, SCRAM users) through the Kafka admin API.

Three layers, so the decisions can be tested without a cluster:

- a backend: plain methods that read or change the cluster and speak plain data (dicts, lists,
  strings, ints). ``AdminBackend`` documents the protocol; ``ConfluentBackend`` implements it with
  ``confluent_kafka.admin.AdminClient``; the unit tests implement it in memory.
- pure planning functions (``plan_topic``, ``plan_acls``, ``plan_scram_user``): desired state plus
  actual state in, a plan out: ``changed``, a list of ``actions`` (plain dicts) and a ``diff``
  (before/after dicts). A desired state Kafka cannot reach raises ``PlanError`` before anything
  changes.
- runners (``run_topic``, ``run_acls``, ``run_scram_user``): read, plan and, unless in check mode,
  ``apply``; ``execute`` wires a runner to an AnsibleModule and keeps secrets out of everything
  it reports.

Secrets (``sasl_password``, ``ssl_key_password``, a SCRAM user's password) are never part of a plan,
an action, a result or an error: the SCRAM password reaches only ``apply`` and the backend's
``upsert_scram``, and every message leaving ``execute`` has the secret values masked.
"""

from __future__ import annotations

import concurrent.futures
import copy
import logging
import time

SECURITY_PROTOCOLS = ["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"]
SASL_MECHANISMS = ["SCRAM-SHA-512", "SCRAM-SHA-256", "PLAIN"]
SCRAM_MECHANISMS = ["SCRAM-SHA-512", "SCRAM-SHA-256"]
# Kafka's bounds for SCRAM iterations (ScramMechanism.minIterations, and the broker's upper limit).
SCRAM_MIN_ITERATIONS = 4096
SCRAM_MAX_ITERATIONS = 16384
ACL_OPERATIONS = ["all", "read", "write", "create", "delete", "alter", "describe", "cluster_action",
                  "describe_configs", "alter_configs", "idempotent_write"]
ACL_PERMISSIONS = ["allow", "deny"]
ACL_RESOURCE_TYPES = ["topic", "group", "cluster", "transactional_id"]
ACL_PATTERN_TYPES = ["literal", "prefixed"]
ACL_FIELDS = ("principal", "host", "operation", "permission", "resource_type", "resource_name", "pattern_type")
CLUSTER_RESOURCE_NAME = "kafka-cluster"
MASK = "********"
DEFAULT_TIMEOUT = 30

# The connection options of every admin module (documented in doc_fragments/kafka_admin.py).
CONNECTION_ARGUMENT_SPEC = dict(
    bootstrap_servers=dict(type="str", required=True),
    security_protocol=dict(type="str", choices=SECURITY_PROTOCOLS, default="SASL_SSL"),
    sasl_mechanism=dict(type="str", choices=SASL_MECHANISMS, default="SCRAM-SHA-512"),
    sasl_username=dict(type="str"),
    sasl_password=dict(type="str", no_log=True),
    ssl_ca_location=dict(type="path"),
    ssl_check_hostname=dict(type="bool", default=True),
    ssl_certificate_location=dict(type="path"),
    ssl_key_location=dict(type="path"),
    ssl_key_password=dict(type="str", no_log=True),
    timeout=dict(type="int", default=DEFAULT_TIMEOUT),
)
CONNECTION_REQUIRED_IF = [
    ("security_protocol", "SASL_SSL", ("sasl_username", "sasl_password")),
    ("security_protocol", "SASL_PLAINTEXT", ("sasl_username", "sasl_password")),
]
CONNECTION_REQUIRED_TOGETHER = [("ssl_certificate_location", "ssl_key_location")]
SECRET_OPTIONS = ("sasl_password", "ssl_key_password")


def quiet_admin_client(conf, name):
    """``(confluent_kafka.admin, logger, AdminClient)`` for the command line's engines: the client logs to a
    logger of its own that prints nothing (librdkafka's connection noise stays off the terminal). Raises
    ImportError with the fix when confluent-kafka is missing."""
    try:
        from confluent_kafka import admin
    except ImportError as exc:
        raise ImportError(f"the Python package confluent-kafka is missing ({exc}): pip install confluent-kafka"
                          ) from None
    quiet = logging.getLogger(name)
    quiet.propagate = False
    if not quiet.handlers:
        quiet.addHandler(logging.NullHandler())
    return admin, quiet, admin.AdminClient({**conf, "logger": quiet})


def argument_spec(**module_options):
    """The connection options plus a module's own (a fresh copy: AnsibleModule may change it)."""
    spec = copy.deepcopy(CONNECTION_ARGUMENT_SPEC)
    spec.update(copy.deepcopy(module_options))
    return spec


def module_kwargs(**extra):
    """AnsibleModule keyword arguments shared by the admin modules (merged with a module's own)."""
    kwargs = dict(supports_check_mode=True, required_if=list(CONNECTION_REQUIRED_IF),
                  required_together=list(CONNECTION_REQUIRED_TOGETHER))
    for key, value in extra.items():
        kwargs[key] = kwargs[key] + list(value) if key in ("required_if", "required_together") else value
    return kwargs


class KafkaAdminError(Exception):
    """The cluster could not be read or changed.

    ``result`` carries what was already done; ``code`` is Kafka's error name when there is one.
    """

    def __init__(self, msg, result=None, code=None):
        super().__init__(msg)
        self.result = result or {}
        self.code = code


class PlanError(KafkaAdminError):
    """The desired state cannot be reached (or is invalid); nothing was changed."""


# --------------------------------------------------------------------------------------------------
# Secrets
# --------------------------------------------------------------------------------------------------


def secret_values(params, extra=()):
    """Every secret value in ``params`` (connection secrets) plus ``extra``, longest first."""
    values = {params.get(k) for k in SECRET_OPTIONS} | set(extra)
    return sorted((v for v in values if isinstance(v, str) and v), key=len, reverse=True)


def redact(text, secrets):
    """``text`` with every secret value replaced by a mask."""
    text = str(text)
    for secret in secrets:
        text = text.replace(secret, MASK)
    return text


def scrub(obj, secrets):
    """A copy of ``obj`` (dicts, lists, strings) with every secret value masked, keys included."""
    if isinstance(obj, str):
        return redact(obj, secrets)
    if isinstance(obj, dict):
        return {scrub(k, secrets): scrub(v, secrets) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [scrub(v, secrets) for v in obj]
    return obj


# --------------------------------------------------------------------------------------------------
# Backend protocol
# --------------------------------------------------------------------------------------------------


class AdminBackend:
    """What the planners and ``apply`` need from a cluster, in plain data.

    An ACL binding is a dict with the keys of ``ACL_FIELDS``; enum values are lower case
    (``operation: write``, ``permission: allow``, ``resource_type: topic``, ``pattern_type: literal``).
    A SCRAM mechanism is ``SCRAM-SHA-256`` or ``SCRAM-SHA-512``. Failures raise ``KafkaAdminError``.
    """

    def describe_topics(self, names):
        """``{name: {"partitions": int, "replication_factor": int}}`` for those of ``names`` that exist."""
        raise NotImplementedError

    def topic_configs(self, name):
        """``{key: value}`` of every config of topic ``name`` (defaults included; value may be None)."""
        raise NotImplementedError

    def create_topic(self, name, partitions, replication_factor, configs):
        """Create a topic; ``partitions``/``replication_factor`` None means the broker's default."""
        raise NotImplementedError

    def create_partitions(self, name, total):
        """Grow topic ``name`` to ``total`` partitions."""
        raise NotImplementedError

    def alter_topic_configs(self, name, configs):
        """Set each key of ``configs`` on topic ``name`` (incremental: other keys are left alone)."""
        raise NotImplementedError

    def delete_topic(self, name):
        raise NotImplementedError

    def describe_acls(self, acl_filter):
        """Bindings matching ``acl_filter`` (a binding dict where None or a missing key means any)."""
        raise NotImplementedError

    def create_acls(self, bindings):
        raise NotImplementedError

    def delete_acls(self, bindings):
        """Delete exactly these bindings."""
        raise NotImplementedError

    def scram_users(self, names=None):
        """``{user: {mechanism: iterations}}`` for ``names`` (those that have credentials), or for all users."""
        raise NotImplementedError

    def upsert_scram(self, user, mechanism, iterations, password):
        raise NotImplementedError

    def delete_scram(self, user, mechanism):
        raise NotImplementedError

    def close(self):
        """Release the connection."""


# --------------------------------------------------------------------------------------------------
# confluent-kafka backend
# --------------------------------------------------------------------------------------------------


def client_config(params):
    """The librdkafka configuration for the connection options (holds secrets: never report it)."""
    protocol = params.get("security_protocol") or "SASL_SSL"
    conf = {"bootstrap.servers": params["bootstrap_servers"], "security.protocol": protocol,
            "client.id": "ansible-metal.kafka"}
    if protocol.startswith("SASL_"):
        conf["sasl.mechanism"] = params.get("sasl_mechanism") or "SCRAM-SHA-512"
        if params.get("sasl_username") is not None:
            conf["sasl.username"] = params["sasl_username"]
        if params.get("sasl_password") is not None:
            conf["sasl.password"] = params["sasl_password"]
    if protocol in ("SSL", "SASL_SSL"):
        check = params.get("ssl_check_hostname")
        conf["ssl.endpoint.identification.algorithm"] = "none" if check is False else "https"
        for option, key in (("ssl_ca_location", "ssl.ca.location"),
                            ("ssl_certificate_location", "ssl.certificate.location"),
                            ("ssl_key_location", "ssl.key.location"),
                            ("ssl_key_password", "ssl.key.password")):
            if params.get(option):
                conf[key] = params[option]
    return conf


def connection_warnings(params):
    """Options that have no effect with the chosen security protocol."""
    protocol = params.get("security_protocol") or "SASL_SSL"
    warnings = []
    if not protocol.startswith("SASL_") and (params.get("sasl_username") or params.get("sasl_password")):
        warnings.append(f"sasl_username/sasl_password are ignored with security_protocol {protocol}")
    ssl_set = [o for o in ("ssl_ca_location", "ssl_certificate_location", "ssl_key_location", "ssl_key_password")
               if params.get(o)]
    if protocol not in ("SSL", "SASL_SSL") and ssl_set:
        warnings.append(f"{', '.join(ssl_set)} ignored with security_protocol {protocol}")
    return warnings


class _ErrorLog(logging.Handler):
    """Keeps librdkafka's log lines (instead of printing them on stderr)."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.lines = []

    def emit(self, record):
        self.lines.append(record.getMessage())


# Client-side error codes (librdkafka's negative codes) that mean the client cannot get in at all.
_AUTH_ERRORS = {"_AUTHENTICATION", "_SSL"}


class ConfluentBackend(AdminBackend):
    """The backend protocol on ``confluent_kafka.admin.AdminClient`` (confluent-kafka >= 2.3)."""

    def __init__(self, params, conf=None):
        """``conf``: a ready librdkafka configuration, used instead of the one built from ``params``."""
        try:
            import confluent_kafka
            from confluent_kafka import admin
        except ImportError as exc:
            raise KafkaAdminError(
                "the Python package confluent-kafka (>= 2.3) is missing for the Python interpreter running this "
                f"module ({exc}); install it there (pip install confluent-kafka) or point "
                "ansible_python_interpreter at an interpreter that has it") from None
        self._ck = confluent_kafka
        self._a = admin
        self.timeout = float(params.get("timeout") or DEFAULT_TIMEOUT)
        self.client_errors = []
        self._log = _ErrorLog()
        logger = logging.getLogger(f"metal.kafka.admin.{id(self)}")
        logger.propagate = False
        logger.setLevel(logging.WARNING)
        logger.addHandler(self._log)
        conf = dict(conf) if conf is not None else client_config(params)
        conf.update({"error_cb": self._on_error, "logger": logger})
        try:
            self._admin = admin.AdminClient(conf)
        except (confluent_kafka.KafkaException, ValueError, TypeError) as exc:
            raise KafkaAdminError(f"cannot create the Kafka admin client: {self._describe(exc)}") from None

    # -- plumbing ---------------------------------------------------------------------------------

    def _on_error(self, err):
        self.client_errors.append((err.name(), err.str()))

    @staticmethod
    def _code(exc):
        err = exc.args[0] if getattr(exc, "args", None) else None
        return err.name() if hasattr(err, "name") else None

    @staticmethod
    def _describe(exc):
        err = exc.args[0] if getattr(exc, "args", None) else None
        if hasattr(err, "name") and hasattr(err, "str"):
            return f"{err.name()}: {err.str()}"
        return str(exc)

    def _client_trouble(self):
        """The latest distinct client-side errors (connection, authentication), newest last."""
        seen = []
        for _, text in self.client_errors[-20:]:
            if text not in seen:
                seen.append(text)
        return "; ".join(seen[-3:])

    def _auth_failure(self):
        for name, text in self.client_errors:
            if name in _AUTH_ERRORS:
                return text
        return None

    def _hint(self, code):
        hints = {
            "TOPIC_AUTHORIZATION_FAILED": "the principal lacks an ACL on the topic (DESCRIBE to read it, CREATE, "
                                          "ALTER, ALTER_CONFIGS or DELETE to change it)",
            "CLUSTER_AUTHORIZATION_FAILED": "the principal lacks an ACL on the cluster (ALTER to change ACLs or "
                                            "SCRAM credentials, DESCRIBE to read them)",
            "SECURITY_DISABLED": "the cluster has no authorizer (authorizer.class.name) configured",
        }
        return hints.get(code)

    def _wait(self, future, what):
        """The future's result; a clear KafkaAdminError on failure, an authentication failure or the timeout."""
        deadline = time.monotonic() + self.timeout + 5
        while True:
            try:
                return future.result(timeout=0.2)
            except concurrent.futures.TimeoutError:
                pass
            except self._ck.KafkaException as exc:
                code = self._code(exc)
                msg = f"{what} failed: {self._describe(exc)}"
                hint = self._hint(code)
                if hint:
                    msg += f" ({hint})"
                if code in ("_TIMED_OUT", "_TRANSPORT", "_ALL_BROKERS_DOWN") and self._client_trouble():
                    msg += f"; client errors: {self._client_trouble()}"
                raise KafkaAdminError(msg, code=code) from None
            self._admin.poll(0)
            auth = self._auth_failure()
            if auth:
                raise KafkaAdminError(f"{what} failed: cannot authenticate: {auth}") from None
            if time.monotonic() > deadline:
                trouble = self._client_trouble()
                raise KafkaAdminError(f"{what}: no answer within {self.timeout:g}s"
                                      + (f"; client errors: {trouble}" if trouble else "")) from None

    def _opts(self):
        return {"request_timeout": self.timeout}

    # -- topics -----------------------------------------------------------------------------------

    def describe_topics(self, names):
        futures = self._admin.describe_topics(self._ck.TopicCollection(list(names)), **self._opts())
        out = {}
        for name, future in futures.items():
            try:
                desc = self._wait(future, f"describe topic {name}")
            except KafkaAdminError as exc:
                if exc.code == "UNKNOWN_TOPIC_OR_PART":
                    continue
                raise
            out[name] = {"partitions": len(desc.partitions),
                         "replication_factor": max((len(p.replicas) for p in desc.partitions), default=0)}
        return out

    def topic_configs(self, name):
        resource = self._a.ConfigResource(self._a.ResourceType.TOPIC, name)
        futures = self._admin.describe_configs([resource], **self._opts())
        entries = self._wait(futures[resource], f"describe configs of topic {name}")
        return {key: entry.value for key, entry in entries.items()}

    def create_topic(self, name, partitions, replication_factor, configs):
        new = self._a.NewTopic(name, num_partitions=-1 if partitions is None else partitions,
                               replication_factor=-1 if replication_factor is None else replication_factor,
                               config=dict(configs or {}))
        futures = self._admin.create_topics([new], operation_timeout=self.timeout, **self._opts())
        self._wait(futures[name], f"create topic {name}")

    def create_partitions(self, name, total):
        futures = self._admin.create_partitions([self._a.NewPartitions(name, total)],
                                                operation_timeout=self.timeout, **self._opts())
        self._wait(futures[name], f"grow topic {name} to {total} partitions")

    def alter_topic_configs(self, name, configs):
        entries = [self._a.ConfigEntry(k, v, incremental_operation=self._a.AlterConfigOpType.SET)
                   for k, v in sorted(configs.items())]
        resource = self._a.ConfigResource(self._a.ResourceType.TOPIC, name, incremental_configs=entries)
        futures = self._admin.incremental_alter_configs([resource], **self._opts())
        self._wait(futures[resource], f"alter configs {', '.join(sorted(configs))} of topic {name}")

    def delete_topic(self, name):
        futures = self._admin.delete_topics([name], operation_timeout=self.timeout, **self._opts())
        self._wait(futures[name], f"delete topic {name}")

    # -- ACLs -------------------------------------------------------------------------------------

    def _enum(self, kind, value):
        a = self._a
        if kind == "resource_type":
            return {"topic": a.ResourceType.TOPIC, "group": a.ResourceType.GROUP, "cluster": a.ResourceType.BROKER,
                    "transactional_id": a.ResourceType.TRANSACTIONAL_ID, None: a.ResourceType.ANY}[value]
        enum = {"pattern_type": a.ResourcePatternType, "operation": a.AclOperation,
                "permission": a.AclPermissionType}[kind]
        return enum.ANY if value is None else enum[value.upper()]

    @staticmethod
    def _from_enum(kind, value):
        name = value.name.lower()
        if kind == "resource_type" and name == "broker":
            return "cluster"
        return name

    def _binding(self, b):
        return self._a.AclBinding(self._enum("resource_type", b["resource_type"]), b["resource_name"],
                                  self._enum("pattern_type", b["pattern_type"]), b["principal"], b["host"],
                                  self._enum("operation", b["operation"]), self._enum("permission", b["permission"]))

    def _filter(self, f):
        return self._a.AclBindingFilter(
            self._enum("resource_type", f.get("resource_type")), f.get("resource_name"),
            self._enum("pattern_type", f.get("pattern_type")), f.get("principal"), f.get("host"),
            self._enum("operation", f.get("operation")), self._enum("permission", f.get("permission")))

    def _to_dict(self, binding):
        return {"principal": binding.principal, "host": binding.host,
                "operation": self._from_enum("operation", binding.operation),
                "permission": self._from_enum("permission", binding.permission_type),
                "resource_type": self._from_enum("resource_type", binding.restype),
                "resource_name": binding.name,
                "pattern_type": self._from_enum("pattern_type", binding.resource_pattern_type)}

    def describe_acls(self, acl_filter):
        future = self._admin.describe_acls(self._filter(acl_filter), **self._opts())
        return [self._to_dict(b) for b in self._wait(future, "describe ACLs")]

    def create_acls(self, bindings):
        if not bindings:
            return
        futures = self._admin.create_acls([self._binding(b) for b in bindings], **self._opts())
        for binding, future in futures.items():
            self._wait(future, f"create ACL {acl_text(self._to_dict(binding))}")

    def delete_acls(self, bindings):
        if not bindings:
            return
        futures = self._admin.delete_acls([self._filter(b) for b in bindings], **self._opts())
        for _, future in futures.items():
            self._wait(future, "delete ACLs")

    # -- SCRAM ------------------------------------------------------------------------------------

    def _mechanism(self, name):
        return self._a.ScramMechanism[name.replace("-", "_")]

    def scram_users(self, names=None):
        if names is None:
            described = self._wait(self._admin.describe_user_scram_credentials(**self._opts()),
                                   "describe SCRAM credentials")
        else:
            futures = self._admin.describe_user_scram_credentials(list(names), **self._opts())
            described = {}
            for user, future in futures.items():
                try:
                    described[user] = self._wait(future, f"describe SCRAM credentials of {user}")
                except KafkaAdminError as exc:
                    if exc.code != "RESOURCE_NOT_FOUND":
                        raise
        return {user: {info.mechanism.name.replace("_", "-"): info.iterations
                       for info in desc.scram_credential_infos}
                for user, desc in described.items()}

    def upsert_scram(self, user, mechanism, iterations, password):
        info = self._a.ScramCredentialInfo(self._mechanism(mechanism), iterations)
        alteration = self._a.UserScramCredentialUpsertion(user, info, password.encode("utf-8"))
        futures = self._admin.alter_user_scram_credentials([alteration], **self._opts())
        self._wait(futures[user], f"set the {mechanism} credential of {user}")

    def delete_scram(self, user, mechanism):
        deletion = self._a.UserScramCredentialDeletion(user, self._mechanism(mechanism))
        futures = self._admin.alter_user_scram_credentials([deletion], **self._opts())
        self._wait(futures[user], f"delete the {mechanism} credential of {user}")

    def close(self):
        admin, self._admin = getattr(self, "_admin", None), None
        if admin is not None:
            admin.poll(0)


# --------------------------------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------------------------------


def config_value(value):
    """A topic config value as Kafka spells it (None: not managed)."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (list, tuple)):
        return ",".join(config_value(v) for v in value)
    return str(value)


def managed_configs(configs):
    """The keys of ``configs`` that are managed (value not null), values as strings."""
    out = {}
    for key, value in (configs or {}).items():
        value = config_value(value)
        if value is not None:
            out[str(key)] = value
    return out


def topic_view(name, state, configs=None):
    """Diff/return view of a topic: name, present/absent, partitions, replication factor, managed configs."""
    if state is None:
        return {"name": name, "state": "absent"}
    view = {"name": name, "state": "present", "partitions": state.get("partitions"),
            "replication_factor": state.get("replication_factor")}
    if configs is not None:
        view["configs"] = dict(sorted(configs.items()))
    return view


def plan_topic(desired, actual, actual_configs=None):
    """Plan one topic.

    ``desired``: name, state (present/absent), partitions, replication_factor, configs (managed keys).
    ``actual``: None when the topic is missing, else ``{"partitions", "replication_factor"}``.
    ``actual_configs``: every config of the existing topic (``{key: value}``).
    """
    name = desired["name"]
    state = desired.get("state") or "present"
    partitions, rf = desired.get("partitions"), desired.get("replication_factor")
    configs = managed_configs(desired.get("configs"))
    if not name:
        raise PlanError("a topic name is required")
    if partitions is not None and partitions < 1:
        raise PlanError(f"topic {name}: partitions must be at least 1, got {partitions}")
    if rf is not None and rf < 1:
        raise PlanError(f"topic {name}: replication_factor must be at least 1, got {rf}")
    actions = []

    if state == "absent":
        before = topic_view(name, actual)
        if actual is not None:
            actions.append({"action": "delete_topic", "name": name})
        return _plan(actions, before, topic_view(name, None))

    if actual is None:
        actions.append({"action": "create_topic", "name": name, "partitions": partitions,
                        "replication_factor": rf, "configs": dict(sorted(configs.items()))})
        after = topic_view(name, {"partitions": partitions, "replication_factor": rf}, configs)
        return _plan(actions, topic_view(name, None), after)

    # The topic exists: refuse what Kafka cannot do before planning anything.
    have_p, have_rf = actual["partitions"], actual["replication_factor"]
    if partitions is not None and partitions < have_p:
        raise PlanError(f"topic {name} has {have_p} partitions; Kafka cannot reduce partitions; "
                        f"recreate the topic or keep {have_p} (requested {partitions}); nothing was changed")
    if rf is not None and rf != have_rf:
        raise PlanError(f"topic {name} has replication factor {have_rf}; changing it to {rf} needs a partition "
                        "reassignment (kafka-reassign-partitions.sh), which this module does not do; "
                        f"set replication_factor: {have_rf} or leave it unset; nothing was changed")
    actual_configs = actual_configs or {}
    if configs and actual_configs:
        unknown = sorted(k for k in configs if k not in actual_configs)
        if unknown:
            raise PlanError(f"topic {name}: {', '.join(unknown)} not topic config(s) this cluster knows; "
                            "nothing was changed")
    current = {k: actual_configs.get(k) for k in configs}
    before = topic_view(name, actual, current)
    after_state = dict(actual)
    if partitions is not None and partitions > have_p:
        actions.append({"action": "create_partitions", "name": name, "partitions": partitions})
        after_state["partitions"] = partitions
    drift = {k: v for k, v in sorted(configs.items()) if current.get(k) != v}
    if drift:
        actions.append({"action": "alter_topic_configs", "name": name, "configs": drift})
    return _plan(actions, before, topic_view(name, after_state, {**current, **drift}))


def _plan(actions, before, after):
    return {"changed": bool(actions), "actions": actions, "diff": {"before": before, "after": after}}


# --------------------------------------------------------------------------------------------------
# ACLs
# --------------------------------------------------------------------------------------------------

ACL_DEFAULTS = {"host": "*", "permission": "allow", "pattern_type": "literal", "state": "present"}


def acl_text(b):
    """One line for a binding, e.g. ``User:alice allow write on topic orders (literal) from host *``."""
    return (f"{b['principal']} {b['permission']} {b['operation']} on {b['resource_type']} "
            f"{b['resource_name']} ({b['pattern_type']}) from host {b['host']}")


def acl_key(b):
    return tuple(b[f] for f in ACL_FIELDS)


def normalize_acl(entry, defaults=None):
    """A binding dict plus ``state`` from a module entry; entries inherit unset keys from ``defaults``."""
    merged = dict(ACL_DEFAULTS)
    merged.update({k: v for k, v in (defaults or {}).items() if v is not None})
    merged.update({k: v for k, v in entry.items() if v is not None})
    b = {f: merged.get(f) for f in ACL_FIELDS}
    b["state"] = merged["state"]
    for field, allowed in (("operation", ACL_OPERATIONS), ("permission", ACL_PERMISSIONS),
                           ("resource_type", ACL_RESOURCE_TYPES), ("pattern_type", ACL_PATTERN_TYPES),
                           ("state", ["present", "absent"])):
        value = b[field]
        if isinstance(value, str):
            b[field] = value = value.lower()
        if value not in allowed:
            raise PlanError(f"ACL {field} must be one of {', '.join(allowed)}, got {value!r}")
    principal = b["principal"]
    if not principal or ":" not in principal or principal.startswith(":") or principal.endswith(":"):
        raise PlanError(f"ACL principal must look like User:alice (type:name), got {principal!r}")
    if b["resource_type"] == "cluster":
        b["resource_name"] = b["resource_name"] or CLUSTER_RESOURCE_NAME
        if b["resource_name"] != CLUSTER_RESOURCE_NAME or b["pattern_type"] != "literal":
            raise PlanError(f"a cluster ACL names the resource {CLUSTER_RESOURCE_NAME} with pattern_type literal, "
                            f"got {b['resource_name']!r} ({b['pattern_type']})")
    elif not b["resource_name"]:
        raise PlanError(f"ACL for {principal} on a {b['resource_type']}: resource_name is required")
    if not b["host"]:
        raise PlanError(f"ACL for {principal}: host must be * or an IP address")
    return b


def acl_filters(entries):
    """One describe filter per resource pattern the entries touch (exact type, name and pattern type)."""
    seen = {}
    for b in entries:
        key = (b["resource_type"], b["resource_name"], b["pattern_type"])
        seen.setdefault(key, {"resource_type": key[0], "resource_name": key[1], "pattern_type": key[2]})
    return list(seen.values())


def plan_acls(entries, existing):
    """Plan normalized entries (``normalize_acl``) against the existing bindings of their resources."""
    have = {acl_key(b) for b in existing}
    wanted = {}
    for b in entries:
        key = acl_key(b)
        if key in wanted and wanted[key]["state"] != b["state"]:
            raise PlanError(f"ACL {acl_text(b)} is listed both present and absent")
        wanted[key] = b
    create = [_binding_only(b) for k, b in wanted.items() if b["state"] == "present" and k not in have]
    delete = [_binding_only(b) for k, b in wanted.items() if b["state"] == "absent" and k in have]
    actions = []
    if create:
        actions.append({"action": "create_acls", "acls": create})
    if delete:
        actions.append({"action": "delete_acls", "acls": delete})
    before = sorted(acl_text(b) for k, b in wanted.items() if k in have)
    after = sorted(acl_text(b) for b in wanted.values() if b["state"] == "present")
    plan = _plan(actions, {"acls": before}, {"acls": after})
    plan["created"], plan["deleted"] = create, delete
    return plan


def _binding_only(b):
    return {f: b[f] for f in ACL_FIELDS}


# --------------------------------------------------------------------------------------------------
# SCRAM users
# --------------------------------------------------------------------------------------------------


def scram_view(name, mechanism, iterations, credential=None):
    if iterations is None:
        return {"user": name, "mechanism": mechanism, "state": "absent"}
    view = {"user": name, "mechanism": mechanism, "state": "present", "iterations": iterations}
    if credential:
        view["credential"] = credential
    return view


def plan_scram_user(desired, actual):
    """Plan one user's credential for one mechanism.

    ``desired``: name, mechanism, iterations, state, update_password (always/on_create) and
    ``password_given`` (a bool: the password itself never reaches the plan).
    ``actual``: ``{mechanism: iterations}`` the user has now (empty when none).
    """
    name, mech = desired["name"], desired.get("mechanism") or "SCRAM-SHA-512"
    iterations = desired.get("iterations") or 8192
    state = desired.get("state") or "present"
    if not name:
        raise PlanError("a SCRAM user name is required")
    if mech not in SCRAM_MECHANISMS:
        raise PlanError(f"mechanism must be one of {', '.join(SCRAM_MECHANISMS)}, got {mech!r}")
    have = (actual or {}).get(mech)
    before = scram_view(name, mech, have)

    if state == "absent":
        actions = [{"action": "delete_scram", "user": name, "mechanism": mech}] if have is not None else []
        return _plan(actions, before, scram_view(name, mech, None))

    if not SCRAM_MIN_ITERATIONS <= iterations <= SCRAM_MAX_ITERATIONS:
        raise PlanError(f"iterations must be between {SCRAM_MIN_ITERATIONS} and {SCRAM_MAX_ITERATIONS}, "
                        f"got {iterations}")
    upsert = {"action": "upsert_scram", "user": name, "mechanism": mech, "iterations": iterations}
    if have is None:
        reason = "create"
    elif have != iterations:
        reason = "iterations"
    elif desired.get("update_password") == "always":
        reason = "update_password"
    else:
        return _plan([], before, before)
    if not desired.get("password_given"):
        why = {"create": f"{name} has no {mech} credential yet",
               "iterations": f"the {mech} credential of {name} has {have} iterations, not {iterations}, "
                             "and Kafka can only change them by setting the password again",
               "update_password": "update_password is always"}[reason]
        raise PlanError(f"a password is required: {why}; nothing was changed")
    upsert["reason"] = reason
    return _plan([upsert], before, scram_view(name, mech, iterations, "new" if have is None else "replaced"))


# --------------------------------------------------------------------------------------------------
# Apply and run
# --------------------------------------------------------------------------------------------------


def apply(backend, actions, password=None):
    """Carry out ``actions`` in order; on failure, the error says what was already done."""
    done = []
    for action in actions:
        kind = action["action"]
        try:
            if kind == "create_topic":
                backend.create_topic(action["name"], action["partitions"], action["replication_factor"],
                                     action["configs"])
            elif kind == "create_partitions":
                backend.create_partitions(action["name"], action["partitions"])
            elif kind == "alter_topic_configs":
                backend.alter_topic_configs(action["name"], action["configs"])
            elif kind == "delete_topic":
                backend.delete_topic(action["name"])
            elif kind == "create_acls":
                backend.create_acls(action["acls"])
            elif kind == "delete_acls":
                backend.delete_acls(action["acls"])
            elif kind == "upsert_scram":
                backend.upsert_scram(action["user"], action["mechanism"], action["iterations"], password)
            elif kind == "delete_scram":
                backend.delete_scram(action["user"], action["mechanism"])
            else:
                raise KafkaAdminError(f"unknown action {kind}")
        except KafkaAdminError as exc:
            already = f"; already done: {', '.join(a['action'] for a in done)}" if done else "; nothing was changed"
            raise KafkaAdminError(f"{exc}{already}", result={"changed": bool(done), "actions": done},
                                  code=exc.code) from None
        done.append(action)


def run_topic(backend, params, check_mode=False):
    name = params["name"]
    actual = backend.describe_topics([name]).get(name)
    configs = managed_configs(params.get("configs"))
    actual_configs = backend.topic_configs(name) if actual is not None and configs and \
        params.get("state", "present") == "present" else {}
    plan = plan_topic(params, actual, actual_configs)
    topic = dict(plan["diff"]["after"])
    if not check_mode:
        apply(backend, plan["actions"])
        if actual is None and topic["state"] == "present":
            # A new topic may take the broker's defaults: report what it got (when already visible).
            created = backend.describe_topics([name]).get(name)
            if created:
                topic.update(partitions=created["partitions"], replication_factor=created["replication_factor"])
    return {"changed": plan["changed"], "actions": plan["actions"], "diff": plan["diff"], "topic": topic}


def acl_entries(params):
    """Normalized entries from a module's ``acls`` list, or from its single-binding options."""
    defaults = {k: params.get(k) for k in ("host", "permission", "pattern_type", "state")}
    if params.get("acls"):
        return [normalize_acl(e, defaults) for e in params["acls"]]
    single = {f: params.get(f) for f in ACL_FIELDS}
    single["state"] = params.get("state")
    for option in ("principal", "operation", "resource_type"):
        if not single.get(option):
            raise PlanError(f"{option} is required (or give a list in acls)")
    return [normalize_acl(single, defaults)]


def run_acls(backend, params, check_mode=False):
    entries = acl_entries(params)
    existing = []
    for acl_filter in acl_filters(entries):
        existing.extend(backend.describe_acls(acl_filter))
    plan = plan_acls(entries, existing)
    if not check_mode:
        apply(backend, plan["actions"])
    have = {acl_key(b) for b in existing}
    acls = []
    for b in entries:
        present = acl_key(b) in have
        acls.append({**b, "changed": present != (b["state"] == "present")})
    return {"changed": plan["changed"], "actions": plan["actions"], "diff": plan["diff"],
            "created": plan["created"], "deleted": plan["deleted"], "acls": acls}


def run_scram_user(backend, params, check_mode=False):
    name, mech = params["name"], params.get("mechanism") or "SCRAM-SHA-512"
    actual = backend.scram_users([name]).get(name, {})
    desired = {k: params.get(k) for k in ("name", "mechanism", "iterations", "state", "update_password")}
    desired["password_given"] = bool(params.get("password"))
    plan = plan_scram_user(desired, actual)
    if not check_mode:
        apply(backend, plan["actions"], password=params.get("password"))
    mechanisms = dict(actual)
    for action in plan["actions"]:
        if action["action"] == "upsert_scram":
            mechanisms[mech] = action["iterations"]
        else:
            mechanisms.pop(mech, None)
    result = {"changed": plan["changed"], "actions": plan["actions"], "diff": plan["diff"], "user": name,
              "mechanism": mech, "iterations": mechanisms.get(mech), "mechanisms": dict(sorted(mechanisms.items()))}
    if not plan["changed"] and params.get("state", "present") == "present" and params.get("password") \
            and params.get("update_password", "on_create") == "on_create":
        result["note"] = ("the credential exists: with update_password on_create the password is not "
                                   "set again (Kafka cannot tell whether it matches)")
    return result


def execute(module, runner, backend_factory=None, secrets=()):
    """Run ``runner(backend, params, check_mode)`` for ``module`` and exit it; secrets never leave.

    ``secrets``: secret values besides the connection's (e.g. a SCRAM user's password).
    """
    params = module.params
    hidden = secret_values(params, secrets)
    backend = None
    result = None
    error = None
    try:
        backend = (backend_factory or ConfluentBackend)(params)
        result = runner(backend, params, module.check_mode)
    except KafkaAdminError as exc:
        error = (redact(exc, hidden), scrub(exc.result, hidden))
    except Exception as exc:  # any other failure still must not leak a secret or a traceback with one
        error = (redact(f"unexpected {type(exc).__name__}: {exc}", hidden), {})
    finally:
        if backend is not None:
            try:
                backend.close()
            except Exception:  # noqa: S110 - closing must not hide the real outcome
                pass
    warnings = [redact(w, hidden) for w in connection_warnings(params)]
    for warning in warnings:
        module.warn(warning)
    if error is not None:
        msg, extra = error
        module.fail_json(msg=msg, **extra)
        return None
    module.exit_json(**scrub(result, hidden))
    return None
