#!/usr/bin/python
# Copyright: kafka-metal contributors
# Apache License 2.0

from __future__ import annotations

DOCUMENTATION = r"""
---
module: kafka_wait_ready
short_description: Wait until a Kafka node serves requests (and, for a broker, is registered and unfenced)
version_added: 0.1.0
description:
  - Polls the node over the Kafka protocol, with no Kafka tooling on the host and no fixed sleep.
  - A controller is ready when its listener answers ApiVersions.
  - A broker is ready when its own node id is in the list of alive brokers that it returns for a
    Metadata request, that is when it is registered with the controllers and unfenced.
options:
  host:
    description: Address of the listener to probe.
    type: str
    default: 127.0.0.1
  port:
    description: Port of the listener to probe.
    type: int
    required: true
  role:
    description: What to wait for.
    type: str
    choices: [broker, controller]
    default: broker
  node_id:
    description: The node id that must appear among alive brokers (role C(broker)).
    type: int
  timeout:
    description: Seconds to wait before failing.
    type: int
    default: 300
  interval:
    description: Seconds between probes.
    type: float
    default: 1.0
extends_documentation_fragment:
  - metal.kafka.read_only
  - metal.kafka.probe_security
"""

EXAMPLES = r"""
- name: Wait for the broker to be registered and unfenced
  metal.kafka.kafka_wait_ready:
    port: 9091
    role: broker
    node_id: "{{ kafka_node_id }}"
    timeout: 300
"""

RETURN = r"""
waited:
  description: Seconds waited.
  returned: always
  type: float
brokers:
  description: Alive broker ids seen by the last probe (role broker).
  returned: success
  type: list
  elements: int
"""

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.metal.kafka.plugins.module_utils import wire


def probe(params):
    """Return (ready, detail, brokers)."""
    if params["role"] == "controller":
        wire.api_versions(params["host"], params["port"], security=wire.security_from_params(params))
        return True, "controller listener answers ApiVersions", []
    md = wire.metadata(params["host"], params["port"], security=wire.security_from_params(params))
    alive = sorted(b["node_id"] for b in md["brokers"])
    if params["node_id"] is None or params["node_id"] in alive:
        return True, f"broker registered and unfenced (alive brokers: {alive})", alive
    return False, f"broker {params['node_id']} not yet among alive brokers {alive}", alive


def main():
    module = AnsibleModule(
        argument_spec=dict(
            host=dict(type="str", default="127.0.0.1"),
            port=dict(type="int", required=True),
            role=dict(type="str", choices=["broker", "controller"], default="broker"),
            node_id=dict(type="int"),
            timeout=dict(type="int", default=300),
            interval=dict(type="float", default=1.0),
            **wire.SECURITY_ARGUMENT_SPEC,
        ),
        required_if=wire.SECURITY_REQUIRED_IF,
        supports_check_mode=True,
    )
    p = module.params
    start = time.monotonic()
    last = "no answer yet"
    while True:
        try:
            ready, last, alive = probe(p)
            if ready:
                module.exit_json(changed=False, waited=round(time.monotonic() - start, 1), msg=last,
                                 brokers=alive)
        except wire.AuthenticationError as exc:
            # wrong credentials do not fix themselves: fail now, without the password
            module.fail_json(msg=f"{p['role']} at {p['host']}:{p['port']} refused the probe's credentials "
                                 f"({exc}); check kafka_admin_user and kafka_admin_password",
                             waited=round(time.monotonic() - start, 1))
        except Exception as exc:  # connection refused, reset, timeout while starting
            last = f"{type(exc).__name__}: {exc}"
        if time.monotonic() - start > p["timeout"]:
            module.fail_json(msg=f"{p['role']} at {p['host']}:{p['port']} not ready after {p['timeout']}s: "
                                 f"{last}; see `journalctl -u kafka` and the Kafka server log on this host",
                             waited=round(time.monotonic() - start, 1))
        time.sleep(p["interval"])


if __name__ == "__main__":
    main()
