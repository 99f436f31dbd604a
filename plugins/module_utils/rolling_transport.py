# Copyright: kafka-metal contributors
# Apache License 2.0
"""The rolling engine's transport: the hosts it reaches (from the inventory's connection settings: user,
port, key, jump hosts, proxy command, passwords) and commands on them over SSH as root (Fabric on Paramiko),
with the errors every part of the engine raises. See :mod:`rolling` for the engine."""

from __future__ import annotations

import contextlib
import os
import re
import shlex
from dataclasses import dataclass, field


class RollError(RuntimeError):
    """The roll stopped: ``host``, ``step`` and ``reason`` say where and why."""

    def __init__(self, host, step, reason):
        self.host, self.step, self.reason = host, step, reason
        where = f"{host}: {step}: " if host else (f"{step}: " if step else "")
        super().__init__(f"{where}{reason}")


class RollInterrupted(RollError):
    """The operator asked the roll to stop (:attr:`Roller.stop_requested`); it stopped between two nodes."""


# ---------------------------------------------------------------------------
# Hosts and SSH
# ---------------------------------------------------------------------------


@dataclass
class Host:
    """An inventory host as the roll reaches it."""

    name: str
    address: str
    groups: list = field(default_factory=list)
    port: int = 22
    user: str = "root"
    key_file: str | None = None
    # jump hosts, first hop first: ``{"address", "port", "user"}`` (a missing user: SSH's own default)
    jump: list = field(default_factory=list)
    proxy_command: str | None = None
    password: str | None = field(default=None, repr=False)  # SSH login password (keys are tried first)
    become_password: str | None = field(default=None, repr=False)  # sudo's password for a user other than root


SSH_ARG_VARS = ("ansible_ssh_common_args", "ansible_ssh_extra_args", "ansible_ssh_args")
BECOME_PASSWORD_VARS = ("ansible_become_password", "ansible_become_pass", "ansible_sudo_pass", "ansible_sudo_password")
LOGIN_PASSWORD_VARS = ("ansible_password", "ansible_ssh_pass", "ansible_ssh_password")


LOGIN_VARS = {"address": ("ansible_host",), "port": ("ansible_port", "ansible_ssh_port"),
              "user": ("ansible_user", "ansible_ssh_user", "ansible_remote_user"),
              "key_file": ("ansible_ssh_private_key_file", "ansible_private_key_file")}


def _first(hostvars, names):
    return next((hostvars.get(n) for n in names if hostvars.get(n) not in (None, "")), None)


def _hop(spec):
    """``[ssh://][user@]host[:port]`` (``[v6]:port`` too) -> ``{"address", "port", "user"}``, or None."""
    spec = spec.strip()
    if spec.startswith("ssh://"):
        spec = spec[len("ssh://"):]
    user, _, rest = spec.rpartition("@")
    port = None
    if rest.startswith("["):
        address, _, tail = rest[1:].partition("]")
        if tail.startswith(":"):
            port = tail[1:]
    elif rest.count(":") == 1:
        address, _, port = rest.partition(":")
    else:
        address = rest
    if not address or (port is not None and not str(port).isdigit()):
        return None
    return {"address": address, "port": int(port) if port else 22, "user": user or None}


def _ssh_proxies(words):
    """``(ProxyJump spec, ProxyCommand)`` named in ssh command-line words (the first of each, as ssh takes)."""
    jump = command = None
    i = 0
    while i < len(words):
        word, option = words[i], None
        if word == "-J" and i + 1 < len(words):
            jump, i = jump or words[i + 1], i + 1
        elif word.startswith("-J") and len(word) > 2:
            jump = jump or word[2:]
        elif word == "-o" and i + 1 < len(words):
            option, i = words[i + 1], i + 1
        elif word.startswith("-o") and len(word) > 2:
            option = word[2:]
        if option:
            parts = re.split(r"\s*=\s*|\s+", option.strip(), maxsplit=1)
            key, value = parts[0].lower(), (parts[1] if len(parts) > 1 else "")
            if key == "proxyjump":
                jump = jump or value
            elif key == "proxycommand":
                command = command or value
        i += 1
    return (None if (jump or "").lower() == "none" else jump), (None if (command or "").lower() == "none"
                                                              else command)


def connection(name, hostvars):
    """``(settings, problems)``: how the engine's own SSH connection (Fabric on Paramiko) reaches host ``name``,
    from its Ansible connection variables, the way Ansible's ssh connection does:

    - address, port, user and key (``ansible_host``, ``ansible_port``, ``ansible_user``,
      ``ansible_ssh_private_key_file``), a login password (``ansible_password``; keys are tried first);
    - jump hosts (``-J`` / ``-o ProxyJump=`` in ``ansible_ssh_common_args``, ``ansible_ssh_extra_args`` or
      ``ansible_ssh_args``, several hops comma-separated) or a ``ProxyCommand``; the known hosts file must know
      the jump hosts' keys too;
    - root through ``sudo`` for another user: ``sudo -n`` (passwordless), or with ``ansible_become_password``.

    ``problems`` name each setting it cannot honour, with the fix: a connection other than SSH, a become method
    other than sudo, a become user other than root."""
    import shlex as _shlex

    problems = []
    conn = hostvars.get("ansible_connection")
    if conn not in (None, "", "ssh", "smart", "paramiko", "ansible.builtin.ssh", "ansible.builtin.paramiko_ssh"):
        problems.append(f"{name}: ansible_connection={conn}: the rolling engine reaches hosts over SSH only")
    jump = command = None
    for var in SSH_ARG_VARS:
        value = str(hostvars.get(var) or "")
        try:
            words = _shlex.split(value)
        except ValueError:
            words = value.split()
        j, c = _ssh_proxies(words)
        jump, command = jump or j, command or c
    hops = []
    if jump:
        hops = [_hop(spec) for spec in jump.split(",")]
        if not all(hops):
            problems.append(f"{name}: the jump host {jump!r} is not [user@]host[:port] (several comma-separated): "
                            "fix ProxyJump / -J in the SSH arguments")
            hops = []
        command = None  # ssh takes ProxyJump over a later ProxyCommand the same way
    method = hostvars.get("ansible_become_method")
    if method not in (None, "", "sudo", "ansible.builtin.sudo"):
        problems.append(f"{name}: ansible_become_method={method}: the rolling engine becomes root with sudo only; "
                        "use sudo for this host")
    become_user = hostvars.get("ansible_become_user")
    if become_user not in (None, "", "root"):
        problems.append(f"{name}: ansible_become_user={become_user}: the rolling engine must run as root to stop "
                        "and start services; remove the setting for this host")
    port = _first(hostvars, LOGIN_VARS["port"]) or 22
    try:
        port = int(port)
    except (TypeError, ValueError):
        problems.append(f"{name}: ansible_port={port!r} is not a port number")
        port = 22
    settings = {
        "name": name, "address": str(_first(hostvars, LOGIN_VARS["address"]) or name), "port": port,
        "user": str(_first(hostvars, LOGIN_VARS["user"]) or "root"),
        "key_file": _first(hostvars, LOGIN_VARS["key_file"]), "jump": hops, "proxy_command": command,
        "password": _first(hostvars, LOGIN_PASSWORD_VARS),
        "become_password": _first(hostvars, BECOME_PASSWORD_VARS),
    }
    if settings["key_file"] is not None:
        settings["key_file"] = str(settings["key_file"])
    for secret in ("password", "become_password"):
        if settings[secret] is not None:
            settings[secret] = str(settings[secret])
    return settings, problems


def connection_problems(name, hostvars):
    """The Ansible connection settings of host ``name`` that the engine cannot honour (see :func:`connection`),
    each named with the fix; empty when it reaches the host the way Ansible does."""
    return connection(name, hostvars)[1]


def host_from_vars(name, hostvars, groups=()):
    """``(Host, problems)`` for inventory host ``name`` from its (templated) Ansible variables; ``groups`` are
    its inventory groups (only the cluster's groups are kept)."""
    settings, problems = connection(name, hostvars)
    return Host(groups=[g for g in groups if g in ("zookeeper", "kafka_controllers", "kafka_brokers")],
                **settings), problems


class FabricRemote:
    """Commands on hosts over SSH (Fabric on Paramiko), as root: ``sudo`` for other users (``sudo -n``, or with
    the host's become password), through its jump hosts or proxy command when it has them.

    Host keys must be known: ``known_hosts`` (a file) is loaded and unknown keys are refused, for jump hosts too.
    """

    def __init__(self, known_hosts=None, connect_timeout=15):
        self.known_hosts = known_hosts
        self.connect_timeout = connect_timeout
        self._connections = {}

    def _open(self, address, user, port, connect_kwargs, gateway=None):
        import paramiko
        from fabric import Connection

        conn = Connection(address, user=user, port=port, connect_timeout=self.connect_timeout,
                          connect_kwargs=connect_kwargs, gateway=gateway)
        conn.client.set_missing_host_key_policy(paramiko.RejectPolicy())
        if self.known_hosts:
            conn.client.load_host_keys(os.path.expanduser(self.known_hosts))
        return conn

    def _connection(self, host):
        conn = self._connections.get(host.name)
        if conn is None:
            keys = {"key_filename": host.key_file} if host.key_file else {}
            # a jump host as ssh -J reaches it: the host's key first, then the agent's and the default keys
            gateway = host.proxy_command or None
            for hop in host.jump:
                gateway = self._open(hop["address"], hop.get("user"), int(hop.get("port") or 22),
                                     {**keys, "look_for_keys": True}, gateway)
            login = {**keys, "look_for_keys": not host.key_file}
            if host.password:
                login["password"] = host.password
            conn = self._open(host.address, host.user, host.port, login, gateway)
            self._connections[host.name] = conn
        return conn

    def run(self, host, command, timeout=120):
        """``(rc, stdout, stderr)`` of ``command`` (a string for the remote shell)."""
        from invoke.exceptions import AuthFailure

        try:
            conn = self._connection(host)
            if host.user == "root":
                result = conn.run(command, hide=True, warn=True, timeout=timeout, in_stream=False)
            elif host.become_password:
                # sudo reads the password from its prompt, answered by Fabric; it never is on a command line
                result = conn.sudo(f"sh -c {shlex.quote(command)}", user="root", password=host.become_password,
                                   hide=True, warn=True, timeout=timeout, in_stream=False)
            else:
                result = conn.run(f"sudo -n sh -c {shlex.quote(command)}", hide=True, warn=True, timeout=timeout,
                                  in_stream=False)
        except AuthFailure as exc:
            raise RollError(host.name, "sudo", f"sudo refused the become password of {host.user}; check "
                                               "ansible_become_password for this host") from exc
        except Exception as exc:  # connection refused, unknown host key, timeout
            via = " (through " + ", ".join(h["address"] for h in host.jump) + ")" if host.jump else ""
            raise RollError(host.name, "ssh", f"cannot run commands over SSH{via} ({type(exc).__name__}: {exc}); "
                                              "check the address, user, key, jump hosts and known_hosts of this "
                                              "host") from exc
        return result.exited, result.stdout, result.stderr

    def close(self):
        for conn in self._connections.values():
            with contextlib.suppress(Exception):  # closing is best effort
                conn.close()
        self._connections = {}
