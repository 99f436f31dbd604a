# Copyright: kafka-metal contributors
# Apache License 2.0
"""Read a Kafka node's configuration, identity and certificates for a backup, with every secret removed.

What comes back is safe to keep next to the inventory:

* Java ``.properties`` (and ``.conf``/``.cfg``, and any other text that is not PEM): a property whose
  name looks secret (password, secret, key, token, credential, ``*.jaas.config``...) or whose value holds
  a secret (a JAAS ``password="..."`` option, a private key) keeps its name and gets the value
  ``<redacted>``; a value continued over several lines loses all of them. Every other line, comments
  included, stays byte for byte. A value that is only a config-provider reference (``${file:path:key}``,
  the way kafka-metal's ``server.properties`` names its secrets) is a pointer, not a secret, and stays.
* PEM: ``PRIVATE KEY`` blocks (RSA, EC, ENCRYPTED, PKCS#8, OpenSSH...) are dropped for a comment line;
  certificates stay.
* Binary keystores (JKS, PKCS#12, anything not UTF-8 text) are never read into the result.
* A path listed as never to be read (the credentials file) is not opened, nor even examined.
"""

from __future__ import annotations

import base64
import grp
import hashlib
import os
import pwd
import re
import stat

from .properties import _split, _unescape

REDACTED = "<redacted>"
DEFAULT_MAX_SIZE = 1024 * 1024

PROPERTIES_SUFFIXES = (".properties", ".conf", ".cfg")
BINARY_SUFFIXES = (".jks", ".p12", ".pfx", ".keystore", ".pkcs12", ".bcfks")

# A name token containing one of these is secret (ssl.key.password, keyStorePassword, password.encoder.secret).
_SECRET_PARTS = ("password", "passwd", "secret", "credential")
# A name token equal to one of these is secret (ssl.keystore.pass, sasl.jaas.config).
_SECRET_TOKENS = {"pass", "pwd", "jaas"}
# A name token ending in one of these is secret (ssl.keystore.key, delegation.token.master.key, apikey, token).
_SECRET_ENDINGS = ("key", "keys", "token", "tokens")
# The last token of names that hold a file name, a type, an algorithm, a class or a number, never a secret
# (ssl.keystore.location, ssl.truststore.type, ssl.keymanager.algorithm, key.serializer, ...).
_HARMLESS_LAST = {"location", "type", "algorithm", "algorithms", "serializer", "deserializer", "class",
                  "ms", "length", "iterations", "enable"}

# A secret inside a value: a JAAS option (password="...", user_admin="...") or a -D system property.
_SECRET_IN_VALUE = re.compile(
    r"(?<![\w.\-])(?:[\w.\-]*(?:password|passwd|secret|credential|token)[\w.\-]*|user_[\w.\-]+)\s*=", re.IGNORECASE)
_PRIVATE_KEY_MARK = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY", re.IGNORECASE)
# A value that is one config-provider reference and nothing else: ${provider:[path:]key}
_REFERENCE = re.compile(r"\$\{[A-Za-z0-9_\-]+:[^{}\s\"'=;\\]+\}")
# A private key block up to its END line (and that line's end), or to the end of the text when END is missing.
_PRIVATE_BLOCK = re.compile(
    r"-----BEGIN ([A-Z0-9 ]*PRIVATE KEY[A-Z0-9 ]*)-----.*?(?:-----END \1-----[^\S\r\n]*(?:\r\n|\r|\n)?|\Z)",
    re.DOTALL | re.IGNORECASE)
_LINE = re.compile(r"([^\r\n]*)(\r\n|\r|\n|\Z)")


class NodeFilesError(RuntimeError):
    """A path cannot be read for a reason the backup must not skip over (never holds file content)."""


def is_secret_key(name):
    """Whether a property name looks like it holds a secret (case-insensitive)."""
    lowered = name.lower()
    if lowered.startswith("user_"):  # PlainLoginModule's user_<name>="<password>"
        return True
    tokens = [t for t in re.split(r"[^a-z0-9]+", lowered) if t]
    if not tokens or tokens[-1] in _HARMLESS_LAST:
        return False
    return any(
        any(part in t for part in _SECRET_PARTS) or t in _SECRET_TOKENS or t.endswith(_SECRET_ENDINGS)
        for t in tokens
    )


def _secret_entry(name, value):
    value = value.strip()
    if not value or _REFERENCE.fullmatch(value):
        return False
    return is_secret_key(name) or bool(_SECRET_IN_VALUE.search(value) or _PRIVATE_KEY_MARK.search(value))


def _physical_lines(text):
    """``(body, line end)`` of each line; the ends are kept so unchanged lines come back byte for byte."""
    lines = []
    for match in _LINE.finditer(text):
        if match.group(0):
            lines.append((match.group(1), match.group(2)))
    return lines


def _continues(body):
    """A line ending in an odd number of backslashes continues on the next one."""
    return (len(body) - len(body.rstrip("\\"))) % 2 == 1


def sanitize_properties(text):
    """``(text, redacted names, dropped key blocks)``: ``text`` with every secret value ``<redacted>``.

    The parsing follows :func:`properties.parse` (Java's rules): comments (``#``/``!``) and blank lines
    stay as they are; an entry continued over several lines with trailing backslashes is one entry, and
    when it is redacted, its continuation lines go with it. A private key block left outside any entry
    (commented out) is dropped as in a PEM file.
    """
    lines = _physical_lines(text)
    out, redacted = [], []
    i = 0
    while i < len(lines):
        body, _end = lines[i]
        first = body.lstrip()
        if not first or first[0] in "#!":
            out.append("".join(lines[i]))
            i += 1
            continue
        indent = body[:len(body) - len(first)]
        parts, j, current = [], i, first
        while _continues(current) and j + 1 < len(lines):
            parts.append(current[:-1])
            j += 1
            current = lines[j][0].lstrip()
        parts.append(current[:-1] if _continues(current) else current)
        entry = "".join(parts)
        key, value = _split(entry)
        name = _unescape(key)
        if _secret_entry(name, _unescape(value)):
            out.append(indent + entry[:len(entry) - len(value)] + REDACTED + lines[j][1])
            redacted.append(name)
        else:
            out.extend("".join(line) for line in lines[i:j + 1])
        i = j + 1
    result, dropped = sanitize_pem("".join(out))
    return result, list(dict.fromkeys(redacted)), dropped


def sanitize_pem(text):
    """``(text, dropped)``: ``text`` without its private key blocks, each replaced by a comment line."""
    def note(match):
        return f"# {match.group(1).upper()} dropped by metal.kafka.kafka_node_files\n"

    return _PRIVATE_BLOCK.subn(note, text)


def is_binary_name(path):
    return path.lower().endswith(BINARY_SUFFIXES)


def sanitize(path, data):
    """``(kind, sanitized bytes or None, redacted names, dropped blocks)`` of a file's ``data``."""
    if is_binary_name(path):
        return "binary-skipped", None, [], 0
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        return "binary-skipped", None, [], 0
    if "\x00" in text:
        return "binary-skipped", None, [], 0
    if not path.lower().endswith(PROPERTIES_SUFFIXES) and "-----BEGIN " in text:
        clean, dropped = sanitize_pem(text)
        return "pem", clean.encode("utf-8"), [], dropped
    clean, redacted, dropped = sanitize_properties(text)
    return "properties", clean.encode("utf-8"), redacted, dropped


def _canonical(path):
    return os.path.normpath(os.path.abspath(path))


def refused_paths(never_read):
    """The set of paths (as given, normalised, and symlinks resolved) that must not be opened."""
    out = set()
    for path in never_read or ():
        out.add(_canonical(path))
        out.add(os.path.realpath(path))
    return out


def _entry(path, kind, st=None):
    entry = {"path": path, "kind": kind, "mode": None, "owner": None, "group": None, "size": None,
             "sha256": None, "content_b64": None, "redacted": [], "dropped": 0}
    if st is not None:
        entry["mode"] = f"{stat.S_IMODE(st.st_mode):04o}"
        try:
            entry["owner"] = pwd.getpwuid(st.st_uid).pw_name
        except KeyError:
            entry["owner"] = str(st.st_uid)
        try:
            entry["group"] = grp.getgrgid(st.st_gid).gr_name
        except KeyError:
            entry["group"] = str(st.st_gid)
        entry["size"] = st.st_size
    return entry


def _read_at_most(fd, limit, path):
    chunks, total = [], 0
    while total < limit:
        try:
            chunk = os.read(fd, min(limit - total, 65536))
        except OSError as exc:
            raise NodeFilesError(f"{path} cannot be read: {exc.strerror}") from None
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    return b"".join(chunks)


def read_node_file(path, refused=frozenset(), max_size=DEFAULT_MAX_SIZE):
    """The backup entry of one file (see the module's ``files``); ``refused`` from :func:`refused_paths`."""
    if _canonical(path) in refused or os.path.realpath(path) in refused:
        return _entry(path, "refused")
    try:
        # non-blocking, so a FIFO put where a file should be cannot hang the task
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC)
    except (FileNotFoundError, NotADirectoryError):
        return _entry(path, "missing")
    except OSError as exc:
        raise NodeFilesError(f"{path} cannot be opened: {exc.strerror}") from None
    try:
        st = os.fstat(fd)
        if stat.S_ISDIR(st.st_mode):
            raise NodeFilesError(f"{path} is a directory, not a file: list the files in it")
        if not stat.S_ISREG(st.st_mode):
            raise NodeFilesError(f"{path} is not a regular file")
        if is_binary_name(path):
            return _entry(path, "binary-skipped", st)
        if st.st_size > max_size:
            return _entry(path, "too-large", st)
        data = _read_at_most(fd, max_size + 1, path)
        if len(data) > max_size:  # it grew since fstat
            return _entry(path, "too-large", os.fstat(fd))
    finally:
        os.close(fd)
    kind, clean, redacted, dropped = sanitize(path, data)
    entry = _entry(path, kind, st)
    if clean is not None:
        entry.update(sha256=hashlib.sha256(clean).hexdigest(), content_b64=base64.b64encode(clean).decode("ascii"),
                     redacted=redacted, dropped=dropped)
    return entry


def read_node_files(paths, never_read=(), max_size=DEFAULT_MAX_SIZE):
    """One entry per distinct path of ``paths``, in order."""
    if max_size < 0:
        raise NodeFilesError(f"max_size is {max_size}; give the largest file size to read, in bytes")
    refused = refused_paths(never_read)
    return [read_node_file(path, refused, max_size) for path in dict.fromkeys(paths)]
