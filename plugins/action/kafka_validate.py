# Copyright: kafka-metal contributors
# Apache License 2.0
"""Validate the whole inventory once, on the controller, before anything is changed (see the module's docs)."""

from __future__ import annotations

import os
import re

from ansible.errors import AnsibleError
from ansible.module_utils.common.arg_spec import ArgumentSpecValidator
from ansible.plugins.action import ActionBase
from ansible.template import Templar
from ansible_collections.metal.kafka.plugins.module_utils import inventory

COLLECTION = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
# Which role's settings apply to which hosts: every host gets the install, Java and tuning; the others by group.
ROLES = (("kafka", None), ("java", None), ("tuning", None), ("controller", inventory.CONTROLLERS),
         ("broker", inventory.BROKERS), ("zookeeper", inventory.ZOOKEEPER))


_UNDEFINED = re.compile(r"'([A-Za-z_][A-Za-z0-9_]*)' is undefined")


class HostSettings:
    """One host's variables as the roles see them: every role's defaults under what the inventory, the play and
    extra vars set, each templated when first read. A value that cannot be templated is a problem, not a crash."""

    def __init__(self, loader, defaults, variables):
        self._vars = {**defaults, **variables}
        self._set = set(variables)
        self._templar = Templar(loader=loader, variables=self._vars)
        self._cache = {}
        self._problems = []
        self._undefined = {}  # an undefined variable -> the settings that use it, in the order read
        self.unresolved = set()

    def __contains__(self, name):
        return name in self._set

    @property
    def problems(self):
        """The values that could not be resolved: one message per undefined variable, naming the settings the
        inventory wrote with it (a role default that only follows from one of them is not named)."""
        out = []
        for undefined, names in self._undefined.items():
            written = [n for n in names if n in self._set] or names[:1]
            out.append(inventory.rules.undefined_problem(" and ".join(written), undefined))
        return out + self._problems

    def set_names(self):
        """The names the inventory, the play or extra vars set (not the roles' defaults)."""
        return set(self._set)

    def __getitem__(self, name):
        if name not in self._vars:
            raise KeyError(name)
        return self.get(name)

    def names(self):
        return set(self._vars)

    def get(self, name, default=None):
        if name not in self._vars:
            return default
        if name not in self._cache:
            try:
                self._cache[name] = self._templar.template(self._vars[name])
            except AnsibleError as exc:
                first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                self.unresolved.add(name)
                undefined = _UNDEFINED.search(first)
                if undefined:
                    self._undefined.setdefault(undefined.group(1), []).append(name)
                else:
                    self._problems.append(f"{name} cannot be resolved ({first}): fix the expression or the "
                                          "variables it uses")
                self._cache[name] = default
        return self._cache[name]


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _VALID_ARGS = frozenset(("hosts", "require_hosts", "earlier"))

    def _role_files(self):
        """Every role's defaults, the options of each role's main entry point, and every name a role reads."""
        defaults, specs, known = {}, {}, set()
        for role, _group in ROLES:
            base = os.path.join(COLLECTION, "roles", role)
            defaults.update(self._loader.load_from_file(os.path.join(base, "defaults", "main.yml"),
                                                        trusted_as_template=True) or {})
            meta = self._loader.load_from_file(os.path.join(base, "meta", "argument_specs.yml")) or {}
            entry_points = meta.get("argument_specs") or {}
            specs[role] = (entry_points.get("main") or {}).get("options") or {}
            for entry in entry_points.values():
                known |= set((entry or {}).get("options") or {})
        return defaults, specs, known | set(defaults)

    def _variables(self, host_names, task_vars):
        """Each host's variables as Ansible resolves them for this play (inventory, play, extra vars)."""
        manager = self._task.get_variable_manager()
        play = self._task.get_play()
        hostvars = task_vars.get("hostvars")
        out = {}
        for name in host_names:
            host = manager._inventory.get_host(name) if manager is not None else None
            if host is not None:
                variables = manager.get_vars(play=play, host=host, include_hostvars=False)
            else:  # not reachable through the play's variable manager: the inventory's own view
                variables = dict(hostvars.raw_get(name)) if hostvars is not None else {}
            if hostvars is not None:
                variables["hostvars"] = hostvars
            out[name] = variables
        return out

    def run(self, tmp=None, task_vars=None):
        task_vars = task_vars or {}
        result = super().run(tmp, task_vars)
        args = self._task.args
        unknown = set(args) - self._VALID_ARGS
        if unknown:
            return dict(failed=True, msg=f"kafka_validate: unknown argument(s) {', '.join(sorted(unknown))}")
        groups = {g: list(task_vars.get("groups", {}).get(g, [])) for g in inventory.GROUPS}
        everyone = list(dict.fromkeys(h for g in inventory.GROUPS for h in groups[g]))
        if args.get("require_hosts"):
            # run from localhost first: an inventory with nothing to do is an error, not a green run
            if everyone:
                result.update(changed=False, msg=f"{len(everyone)} hosts in the inventory's groups")
            else:
                all_groups = {g: list(h) for g, h in (task_vars.get("groups") or {}).items()}
                sources = [str(x) for x in task_vars.get("ansible_inventory_sources") or []]
                result.update(failed=True, msg="The inventory is not valid; nothing was changed:\n- "
                              + inventory.rules.no_hosts_problem(all_groups, sources))
            return result
        hosts = args.get("hosts")
        hosts = everyone if hosts is None else list(dict.fromkeys(hosts if isinstance(hosts, list) else [hosts]))
        earlier = args.get("earlier")
        if (isinstance(earlier, dict) and not earlier.get("failed") and isinstance(earlier.get("preflight"), dict)
                and set(hosts) <= set(earlier.get("hosts") or [])):
            # validated earlier in this run (a registered result is replaced even when a task is skipped,
            # so each role asks again and gets the same answer, with the plan for its hosts)
            result.update(changed=False, hosts=earlier["hosts"], preflight=earlier["preflight"],
                          msg=earlier.get("msg", "inventory valid"))
            return result
        defaults, specs, known = self._role_files()
        raw = self._variables(list(dict.fromkeys(everyone + hosts)), task_vars)
        resolved = {h: HostSettings(self._loader, defaults, v) for h, v in raw.items()}
        spec_problems = {h: self._spec_problems(h, resolved[h], specs, groups) for h in hosts}
        errors = inventory.inventory_errors(hosts, groups, resolved, spec_problems,
                                            exists=lambda path: os.path.exists(os.path.expanduser(path)))
        errors += inventory.rules.shadowed_vars_files(self._vars_listing(task_vars))
        warnings = inventory.inventory_warnings(hosts, resolved, known)
        if warnings:
            result["warnings"] = warnings
        if errors:
            result.update(failed=True, errors=errors,
                          msg="The inventory is not valid; nothing was changed:\n- " + "\n- ".join(errors))
        else:
            # what each host must offer, for the kafka role's check of the host before it changes anything
            plans = {h: inventory.preflight_plan(h, resolved[h], groups) for h in hosts}
            result.update(changed=False, hosts=hosts, preflight=plans,
                          msg=f"inventory valid ({len(hosts)} host{'s' if len(hosts) != 1 else ''} checked)")
        return result

    @staticmethod
    def _vars_listing(task_vars):
        """The entries of every group_vars and host_vars directory beside the inventory sources and the
        playbook."""
        bases = []
        for source in task_vars.get("ansible_inventory_sources") or []:
            source = str(source)
            bases.append(source if os.path.isdir(source) else os.path.dirname(source))
        if task_vars.get("playbook_dir"):
            bases.append(str(task_vars["playbook_dir"]))
        listing = {}
        for base in dict.fromkeys(bases):
            for kind in ("group_vars", "host_vars"):
                where = os.path.join(base, kind)
                if os.path.isdir(where):
                    listing[where] = [(e.name, e.is_dir()) for e in os.scandir(where)]
        return listing

    @staticmethod
    def _spec_problems(host, settings, specs, groups):
        """What the roles' argument specs (types, choices, required keys) say about this host's settings."""
        out = []
        for role, group in ROLES:
            if group is not None and host not in groups.get(group, []):
                continue
            options = specs.get(role) or {}
            params = {name: settings.get(name) for name in options if name in settings.names()}
            validation = ArgumentSpecValidator(options).validate(params)
            out += [inventory.rules.spec_message(str(m), params) for m in validation.error_messages]
        return out
