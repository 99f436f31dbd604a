"""An in-memory cluster implementing the kafka_admin backend protocol, for the unit tests."""

from __future__ import annotations

import copy

from ansible_collections.metal.kafka.plugins.module_utils.kafka_admin import ACL_FIELDS, KafkaAdminError

# A few of the configs every topic has (describe_configs lists defaults too).
DEFAULT_TOPIC_CONFIGS = {
    "cleanup.policy": "delete",
    "retention.ms": "604800000",
    "min.insync.replicas": "1",
    "segment.bytes": "1073741824",
    "max.message.bytes": "1048588",
}
BROKER_DEFAULT_PARTITIONS = 1
BROKER_DEFAULT_RF = 1
MUTATING = {"create_topic", "create_partitions", "alter_topic_configs", "delete_topic", "create_acls",
            "delete_acls", "upsert_scram", "delete_scram"}


class FakeBackend:
    def __init__(self, topics=None, acls=None, scram=None, fail_on=None, fail_msg="boom"):
        self.topics = {}  # name -> {"partitions", "replication_factor"}
        self.configs = {}  # name -> {key: value}, defaults included
        for name, spec in (topics or {}).items():
            spec = dict(spec)
            overrides = spec.pop("configs", {})
            self.topics[name] = spec
            self.configs[name] = {**DEFAULT_TOPIC_CONFIGS, **overrides}
        self.acls = [dict(b) for b in (acls or [])]
        self.scram = copy.deepcopy(scram or {})  # user -> {mechanism: iterations}
        self.passwords = {}  # (user, mechanism) -> password
        self.calls = []
        self.fail_on = fail_on
        self.fail_msg = fail_msg
        self.closed = False

    def _call(self, name, *args):
        self.calls.append((name, *args))
        if self.fail_on == name:
            raise KafkaAdminError(f"{name} failed: {self.fail_msg}")

    @property
    def mutations(self):
        return [c for c in self.calls if c[0] in MUTATING]

    # topics
    def describe_topics(self, names):
        self._call("describe_topics", list(names))
        return {n: dict(self.topics[n]) for n in names if n in self.topics}

    def topic_configs(self, name):
        self._call("topic_configs", name)
        return dict(self.configs[name])

    def create_topic(self, name, partitions, replication_factor, configs):
        self._call("create_topic", name, partitions, replication_factor, dict(configs))
        self.topics[name] = {"partitions": partitions or BROKER_DEFAULT_PARTITIONS,
                             "replication_factor": replication_factor or BROKER_DEFAULT_RF}
        self.configs[name] = {**DEFAULT_TOPIC_CONFIGS, **configs}

    def create_partitions(self, name, total):
        self._call("create_partitions", name, total)
        assert total > self.topics[name]["partitions"]
        self.topics[name]["partitions"] = total

    def alter_topic_configs(self, name, configs):
        self._call("alter_topic_configs", name, dict(configs))
        self.configs[name].update(configs)

    def delete_topic(self, name):
        self._call("delete_topic", name)
        del self.topics[name]
        del self.configs[name]

    # ACLs
    def describe_acls(self, acl_filter):
        self._call("describe_acls", dict(acl_filter))
        return [dict(b) for b in self.acls
                if all(acl_filter.get(f) in (None, b[f]) for f in ACL_FIELDS)]

    def create_acls(self, bindings):
        self._call("create_acls", [dict(b) for b in bindings])
        for b in bindings:
            if b not in self.acls:
                self.acls.append(dict(b))

    def delete_acls(self, bindings):
        self._call("delete_acls", [dict(b) for b in bindings])
        self.acls = [b for b in self.acls if b not in bindings]

    # SCRAM
    def scram_users(self, names=None):
        self._call("scram_users", names)
        users = self.scram if names is None else {n: self.scram[n] for n in names if n in self.scram}
        return copy.deepcopy(users)

    def upsert_scram(self, user, mechanism, iterations, password):
        self._call("upsert_scram", user, mechanism, iterations)  # the password is not recorded in calls
        assert isinstance(password, str) and password
        self.scram.setdefault(user, {})[mechanism] = iterations
        self.passwords[(user, mechanism)] = password

    def delete_scram(self, user, mechanism):
        self._call("delete_scram", user, mechanism)
        del self.scram[user][mechanism]
        if not self.scram[user]:
            del self.scram[user]

    def close(self):
        self.closed = True
