# Copyright: kafka-metal contributors
# Apache License 2.0
"""Issue (or take in) one host's TLS certificate and assemble its PEM keystore, on the controller."""

from __future__ import annotations

import ipaddress
import os

from ansible.errors import AnsibleActionFail
from ansible.plugins.action import ActionBase
from ansible_collections.metal.kafka.plugins.module_utils.pki import (
    CRYPTOGRAPHY_IMPORT_ERROR,
    KEY_TYPES,
    MAX_LEAF_DAYS,
    BundleError,
    PkiError,
    ensure_host,
)

ARGUMENT_SPEC = dict(
    ca_dir=dict(type="str", required=True),
    ca_passphrase=dict(type="str", no_log=True),
    ca_common_name=dict(type="str"),
    host=dict(type="str"),
    dns_names=dict(type="list", elements="str", default=[]),
    ip_addresses=dict(type="list", elements="str", default=[]),
    valid_days=dict(type="int", default=MAX_LEAF_DAYS),
    renew_before_days=dict(type="int", default=30),
    key_password=dict(type="str", no_log=True),
    key_type=dict(type="str", choices=list(KEY_TYPES), default="ec"),
    byo=dict(type="dict", options=dict(
        ca_bundle=dict(type="str", required=True),
        certificate=dict(type="str", required=True),
        key=dict(type="str", required=True, no_log=False),
        key_passphrase=dict(type="str", no_log=True),
        chain=dict(type="str"),
    )),
)


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def _path(self, value):
        return self._loader.path_dwim(os.path.expanduser(str(value)))

    def _read_byo(self, byo):
        material, errors = {}, []
        for name in ("ca_bundle", "certificate", "key", "chain"):
            if not byo.get(name):
                continue
            path = self._path(byo[name])
            try:
                with open(path, "rb") as handle:
                    material[name] = handle.read()
            except OSError as exc:
                errors.append(f"byo.{name}: cannot read {path} on the controller: {exc.strerror}")
        if byo.get("key_passphrase"):
            material["key_passphrase"] = str(byo["key_passphrase"])
        return material, errors

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        _validation, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        if CRYPTOGRAPHY_IMPORT_ERROR is not None:
            raise AnsibleActionFail("kafka_certificate needs the Python library cryptography on the controller "
                                    f"({CRYPTOGRAPHY_IMPORT_ERROR}): install it into the Python that runs Ansible")
        host = args.get("host") or task_vars.get("inventory_hostname")
        if not host:
            raise AnsibleActionFail("kafka_certificate: host is not set and there is no inventory_hostname")
        host = str(host)
        ca_dir = self._path(args["ca_dir"])
        dns_names = [str(n) for n in args["dns_names"]]
        ip_addresses = [str(a) for a in args["ip_addresses"]]
        if not dns_names and not ip_addresses and args.get("byo") is None:
            # nothing given: the certificate is for the host's own name (or address)
            try:
                ip_addresses = [str(ipaddress.ip_address(host))]
            except ValueError:
                dns_names = [host]

        byo = None
        if args.get("byo") is not None:
            byo, errors = self._read_byo(args["byo"])
            if errors:
                result.update(failed=True, errors=errors, msg="kafka_certificate: " + "; ".join(errors))
                return result

        try:
            outcome = ensure_host(
                ca_dir, host, dns_names, ip_addresses,
                ca_passphrase=str(args["ca_passphrase"]) if args.get("ca_passphrase") else None,
                valid_days=args["valid_days"], renew_before_days=args["renew_before_days"],
                key_password=str(args["key_password"]) if args.get("key_password") else None,
                key_type=args["key_type"], ca_common_name=args.get("ca_common_name"), byo=byo,
                check_mode=bool(self._task.check_mode))
        except BundleError as exc:
            result.update(failed=True, errors=exc.errors, msg=f"kafka_certificate for {host}: {exc}")
            if exc.warnings:
                result["warnings"] = exc.warnings
            return result
        except PkiError as exc:
            result.update(failed=True, msg=f"kafka_certificate for {host}: {exc}")
            return result

        result.update(
            changed=outcome.changed,
            reason=outcome.reason,
            keystore=outcome.keystore,
            truststore=outcome.truststore,
            key_password_file=outcome.key_password_file,
            key_password=outcome.key_password,
            not_after=outcome.not_after,
            ca_not_after=outcome.ca_not_after,
            names=outcome.names,
            fingerprint=outcome.fingerprint,
            ca_created=outcome.ca_created,
            ca_certificate=outcome.ca_certificate,
            msg=f"{host}: {outcome.reason}",
        )
        if outcome.warnings:
            result["warnings"] = outcome.warnings
        return result
