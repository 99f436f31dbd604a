# Copyright: kafka-metal contributors
# Apache License 2.0
"""The cluster as the move engine (:mod:`moving`) sees it, read and changed through Kafka's protocol.

confluent-kafka's admin client gives the metadata (brokers and racks, every partition's replicas, in-sync
replicas and leader), configs and leader elections; the project's wire client gives what confluent-kafka has no
API for: the reassignments (submit, cancel, list), the brokers' log directories (replica sizes, free bytes) and
the unregistration of a removed broker. Both use the same connection settings (a librdkafka configuration).
"""

from __future__ import annotations

from . import kafka_admin, moving, wire

INTERNAL = ("__cluster_metadata",)


class ClusterError(moving.MoveError):
    pass


class Cluster:
    def __init__(self, conf, timeout=30.0):
        self.conf = dict(conf)
        try:
            self._admin_mod, self._quiet, self.admin = kafka_admin.quiet_admin_client(self.conf, "metal.kafka.moving")
        except ImportError as exc:
            raise ClusterError(str(exc)) from None
        self.security = wire.security_from_client_config(self.conf)
        self.timeout = timeout
        self._cluster_id = None
        self._addresses = {}

    # reading

    def cluster_id(self):
        if self._cluster_id is None:
            self._describe()
        return self._cluster_id

    def _describe(self):
        from confluent_kafka import KafkaException

        try:
            desc = self.admin.describe_cluster(request_timeout=self.timeout).result(timeout=self.timeout + 5)
        except KafkaException as exc:
            if "controller" not in str(exc):
                raise
            # the client still takes a broker that has gone (stopped, removed) for the one that answers admin
            # requests: a new client reads the cluster afresh
            self.admin = self._admin_mod.AdminClient({**self.conf, "logger": self._quiet})
            desc = self.admin.describe_cluster(request_timeout=self.timeout).result(timeout=self.timeout + 5)
        self._cluster_id = desc.cluster_id
        self._addresses = {n.id: (n.host, n.port) for n in desc.nodes}
        return desc

    def view(self, sizes=True):
        """Brokers with racks, every partition's replicas, in-sync replicas and leader, and (with ``sizes``) each
        partition's size (its largest replica) and each broker's free bytes."""
        desc = self._describe()
        md = self.admin.list_topics(timeout=self.timeout)
        out = {"brokers": {n.id: n.rack for n in desc.nodes}, "assignment": {}, "isr": {}, "leaders": {},
               "sizes": {}, "free": {}, "write_rate": 0.0}
        for topic in md.topics.values():
            if topic.error is not None or topic.topic in INTERNAL:
                continue
            for p in topic.partitions.values():
                tp = (topic.topic, p.id)
                out["assignment"][tp] = list(p.replicas)
                out["isr"][tp] = list(p.isrs)
                out["leaders"][tp] = p.leader
        if sizes:
            for broker, dirs in self.log_dirs(out["brokers"]).items():
                out["free"][broker] = sum(d["usable_bytes"] for d in dirs if d["usable_bytes"] >= 0)
                for d in dirs:
                    for tp, info in d["partitions"].items():
                        if not info["future"]:
                            out["sizes"][tp] = max(out["sizes"].get(tp, 0), info["size"])
        return out

    def log_dirs(self, brokers):
        """{broker: its log directories} (wire.describe_log_dirs), for the brokers that answer."""
        out = {}
        for broker in brokers:
            host, port = self._addresses.get(broker, (None, None))
            if host is None:
                continue
            try:
                out[broker] = wire.describe_log_dirs(host, port, self.timeout, self.security)
            except (OSError, wire.ProbeError):
                continue  # a broker that does not answer has no sizes to give (it may be the one leaving)
        return out

    def _any_broker(self, call):
        errors = []
        if not self._addresses:
            self._describe()
        for broker, (host, port) in sorted(self._addresses.items()):
            try:
                return call(host, port)
            except wire.ReassignmentError:
                raise
            except (OSError, wire.ProbeError) as exc:
                errors.append(f"broker {broker} ({host}:{port}): {exc}")
        raise ClusterError("no broker answered: " + "; ".join(errors))

    def _controller_call(self, call):
        """``call(host, port)`` on the broker that takes controller requests: the active controller in ZooKeeper
        mode, any broker in KRaft mode (it forwards)."""
        desc = self._describe()
        controller = desc.controller.id if desc.controller is not None else None
        if controller in self._addresses:
            host, port = self._addresses[controller]
            try:
                return call(host, port)
            except wire.ReassignmentError:
                raise
            except (OSError, wire.ProbeError):
                pass
        return self._any_broker(call)

    def in_flight(self):
        return self._controller_call(lambda h, p: wire.list_partition_reassignments(h, p, self.timeout,
                                                                                    self.security))

    def copied(self, adding):
        """Bytes the new replicas hold so far: ``adding`` maps a partition to its new brokers."""
        brokers = sorted({b for bs in adding.values() for b in bs})
        total = 0
        for broker, dirs in self.log_dirs(brokers).items():
            for d in dirs:
                for tp, info in d["partitions"].items():
                    if broker in adding.get(tp, ()):
                        total += info["size"]
        return total

    def holds(self, brokers):
        """Whether any of ``brokers`` still has a replica in its log directories."""
        for dirs in self.log_dirs(brokers).values():
            if any(tp[0] not in INTERNAL for d in dirs for tp in d["partitions"]):
                return True
        return False

    def broker_ids(self):
        """The brokers the last look at the cluster found serving (those a broker-level call can ask)."""
        return sorted(self._addresses)

    def throttles(self):
        """The throttle settings set now: {"topics": {topic: {key: value}}, "brokers": {id: {key: value}}}."""
        a = self._admin_mod
        resources = [a.ConfigResource(a.ResourceType.BROKER, str(b)) for b in sorted(self._addresses)]
        md = self.admin.list_topics(timeout=self.timeout)
        resources += [a.ConfigResource(a.ResourceType.TOPIC, t) for t in sorted(md.topics) if t not in INTERNAL]
        out = {"topics": {}, "brokers": {}}
        for resource, future in self._each_call(self.admin.describe_configs, resources):
            configs = future.result(timeout=self.timeout + 5)
            keys = moving.TOPIC_THROTTLES if resource.restype == a.ResourceType.TOPIC else moving.BROKER_THROTTLES
            found = {}
            for key in keys:
                entry = configs.get(key)
                per_broker = entry is not None and entry.source == a.ConfigSource.DYNAMIC_BROKER_CONFIG.value
                if entry is not None and entry.value not in (None, "") and not entry.is_default and (
                        resource.restype == a.ResourceType.TOPIC or per_broker):
                    found[key] = entry.value
            if found:
                kind = "topics" if resource.restype == a.ResourceType.TOPIC else "brokers"
                out[kind][resource.name] = found
        return out

    # changing

    def reassign(self, targets):
        return self._controller_call(lambda h, p: wire.alter_partition_reassignments(h, p, targets, self.timeout,
                                                                                     self.security))

    def elect_preferred(self, partitions):
        if not partitions:
            return
        from confluent_kafka import ElectionType, KafkaException, TopicPartition

        # no timeout keywords: confluent-kafka 2.x's binding of this call rejects them
        future = self.admin.elect_leaders(ElectionType.PREFERRED, [TopicPartition(t, p) for t, p in partitions])
        try:
            future.result(timeout=self.timeout + 5)  # per partition: None, or why not (already the leader)
        except KafkaException as exc:
            if "ELECTION_NOT_NEEDED" not in str(exc):
                raise ClusterError(f"the preferred leader election failed: {exc}") from None

    def set_throttles(self, topics, brokers):
        a = self._admin_mod

        def resource(restype, name, configs):
            return a.ConfigResource(restype, str(name), incremental_configs=[
                a.ConfigEntry(k, v, incremental_operation=a.AlterConfigOpType.SET) for k, v in sorted(configs.items())])

        resources = [resource(a.ResourceType.TOPIC, t, c) for t, c in sorted(topics.items())]
        resources += [resource(a.ResourceType.BROKER, b, c) for b, c in sorted(brokers.items())]
        self._alter(resources, "setting the replication throttles")

    def restore_throttles(self, saved, touched=None):
        """Put the throttle settings back as they were (``saved``, from :meth:`throttles`): on every topic and
        broker that has one now or was throttled by this operation (``touched``: {"topics": [...], "brokers":
        [...]}), each key is set to its old value or deleted. Deleting does not depend on reading the configs
        first, which a broker may answer from a cache a moment behind."""
        a = self._admin_mod
        self._describe()
        now = self.throttles()
        touched = touched or {}
        resources = []
        for kind, restype, keys in (("topics", a.ResourceType.TOPIC, moving.TOPIC_THROTTLES),
                                    ("brokers", a.ResourceType.BROKER, moving.BROKER_THROTTLES)):
            before = {str(k): v for k, v in ((saved or {}).get(kind) or {}).items()}
            names = {str(n) for n in now[kind]} | set(before) | {str(n) for n in touched.get(kind, [])}
            if kind == "brokers":  # a broker's settings are changed through the broker: those that are up
                names &= {str(b) for b in self._addresses}
            for name in sorted(names):
                was = before.get(name, {})
                entries = [a.ConfigEntry(key, was[key], incremental_operation=a.AlterConfigOpType.SET) if key in was
                           else a.ConfigEntry(key, None, incremental_operation=a.AlterConfigOpType.DELETE)
                           for key in keys]
                resources.append(a.ConfigResource(restype, name, incremental_configs=entries))
        self._alter(resources, "removing the replication throttles")

    def _alter(self, resources, what):
        if not resources:
            return
        for resource, future in self._each_call(self.admin.incremental_alter_configs, resources):
            try:
                future.result(timeout=self.timeout + 5)
            except Exception as exc:  # noqa: BLE001 - reported with the resource it concerns
                raise ClusterError(f"{what} on {resource.name} failed: {exc}") from None

    def _each_call(self, call, resources):
        """(resource, future) of ``call`` over ``resources``: the topics in one request, each broker in its own
        (a broker's configs are answered by that broker, one per request)."""
        a = self._admin_mod
        topics = [r for r in resources if r.restype == a.ResourceType.TOPIC]
        groups = ([topics] if topics else []) + [[r] for r in resources if r.restype != a.ResourceType.TOPIC]
        for group in groups:
            yield from call(group, request_timeout=self.timeout).items()

    def unregister(self, broker):
        self._any_broker(lambda h, p: wire.unregister_broker(h, p, broker, self.timeout, self.security))
