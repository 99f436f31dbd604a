# Copyright: kafka-metal contributors
# Apache License 2.0
"""TLS certificates for Kafka nodes, issued on the Ansible controller.

A small private CA lives in a directory on the controller (``ca.key`` never leaves it). For each
host it issues a key and a certificate and assembles what Kafka's PEM support reads:

* ``keystore.pem`` for ``ssl.keystore.type=PEM`` / ``ssl.keystore.location``: the private key as
  an encrypted PKCS#8 ``ENCRYPTED PRIVATE KEY`` block, then the leaf certificate and any
  intermediates; ``ssl.key.password`` is the password it is encrypted with;
* ``truststore.pem`` for ``ssl.truststore.type=PEM``: the CA certificate(s).

Bring-your-own certificates are checked with :func:`validate_bundle` and assembled the same way.

Choices, and why:

* Keys are EC P-256 (ECDSA with SHA-256) by default, for the CA and the hosts: small, fast to
  generate (parallel forks do not wait on RSA prime searches), accepted by Java 17's TLS 1.2 and
  1.3 stacks, by OpenSSL-based clients (librdkafka) and by Python. RSA 3072 is available with
  ``key_type="rsa"`` for environments that require RSA.
* The CA has ``basicConstraints CA:TRUE, pathlen:0`` (it signs host certificates directly),
  ``keyUsage keyCertSign, cRLSign`` and a subject key identifier. Its name carries a random
  suffix so that a re-created CA is never confused with an old one of the same name.
* The keystore's private key is encrypted with ``pbeWithSHA1And3-KeyTripleDES-CBC`` (PKCS#12
  PBE, OID 1.2.840.113549.1.12.1.3), not PBES2. Kafka's ``DefaultSslEngineFactory`` decrypts it
  with ``SecretKeyFactory.getInstance(EncryptedPrivateKeyInfo.getAlgName())``; on Java 17
  ``getAlgName()`` is ``"PBES2"`` for every PBES2 key and no ``PBES2`` SecretKeyFactory exists
  (``NoSuchAlgorithmException: PBES2 SecretKeyFactory not available``; later JDKs resolve it).
  For the PKCS#12 scheme ``getAlgName()`` is ``PBEWithSHA1AndDESede``, which every JDK resolves.
  ``tests/unit/test_pki_java.py`` proves this with the real JDK (and Kafka's own class where a
  kafka-clients jar is at hand). The scheme is old, but the password sits next to the file
  (``ssl.key.password`` in the node's configuration), so this encryption is a format requirement
  of Kafka, not a protection; the files are 0600 in 0700 directories.
* Encryption uses a random salt, so the keystore is rebuilt only when its key, certificates or
  password change (:func:`keystore_matches`); otherwise the file on the controller is kept and
  copying it to the host reports no change.
* Ansible runs hosts in parallel processes: creating the CA, and issuing for one host, happen
  under an exclusive ``fcntl`` lock, so two processes never create two CAs.

Pure logic with ``cryptography``; no Ansible imports.
"""

from __future__ import annotations

import base64
import contextlib
import datetime as dt
import ipaddress
import os
import re
import secrets
from collections import namedtuple
from dataclasses import dataclass, field

try:
    from cryptography import x509
    from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec, rsa
    from cryptography.hazmat.primitives.serialization import pkcs12
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
except ImportError as _exc:  # ansible-core depends on cryptography; a bare Python may lack it
    CRYPTOGRAPHY_IMPORT_ERROR = _exc
else:
    CRYPTOGRAPHY_IMPORT_ERROR = None

from .files import LockTimeout, write_file
from .files import locked as files_locked

CA_KEY = "ca.key"
CA_CERT = "ca.crt"
HOSTS_DIR = "hosts"
KEYSTORE = "keystore.pem"
TRUSTSTORE = "truststore.pem"
KEY_PASSWORD_FILE = "key-password"  # noqa: S105 - a file name
LOCK = ".lock"

MAX_LEAF_DAYS = 825
KEY_TYPES = ("ec", "rsa")
RSA_BITS = 3072
KDF_ROUNDS = 10000
LOCK_TIMEOUT = 300
BACKDATE = dt.timedelta(minutes=5)  # tolerate clocks a little behind the controller's

# DER encodings (tag, length, value) of the object identifiers the keystore code looks for.
_OID_DATA = bytes.fromhex("06092a864886f70d010701")  # 1.2.840.113549.1.7.1 PKCS#7 data
_OID_SHROUDED_KEY_BAG = bytes.fromhex("060b2a864886f70d010c0a0102")  # 1.2.840.113549.1.12.10.1.2
_OID_PBE_SHA1_3DES = bytes.fromhex("060a2a864886f70d010c0103")  # 1.2.840.113549.1.12.1.3

_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----\r?\n(.*?)-----END \1-----\r?\n?", re.DOTALL)
_DNS_LABEL = r"[a-z0-9_](?:[a-z0-9_-]{0,61}[a-z0-9_])?"
_DNS_NAME = re.compile(rf"^(?:\*\.)?{_DNS_LABEL}(?:\.{_DNS_LABEL})*$")
_HOST_DIR_NAME = re.compile(r"^[A-Za-z0-9_:-][A-Za-z0-9._:-]*$")


class PkiError(Exception):
    """Something about the CA, the certificates or their files needs the operator's attention."""


class BundleError(PkiError):
    """A bring-your-own bundle is not usable; ``errors`` lists every problem found."""

    def __init__(self, errors, warnings=()):
        self.errors = list(errors)
        self.warnings = list(warnings)
        super().__init__("the bring-your-own certificate is not usable:\n- " + "\n- ".join(self.errors))


class Findings(list):
    """Errors found in a bundle (empty when it is usable); ``warnings`` holds the non-fatal ones."""

    def __init__(self, errors=(), warnings=()):
        super().__init__(errors)
        self.warnings = list(warnings)


@dataclass
class CA:
    key: object
    cert: x509.Certificate
    created: bool = False


@dataclass
class HostResult:
    """What :func:`ensure_host` did (or, in check mode, would do) for one host."""

    changed: bool
    reason: str
    keystore: str
    truststore: str
    key_password_file: str
    key_password: str = field(repr=False, default="")
    not_after: str | None = None
    # the soonest expiry among the CA certificates the node trusts (its truststore)
    ca_not_after: str | None = None
    names: list = field(default_factory=list)
    fingerprint: str | None = None
    ca_created: bool = False
    ca_certificate: str | None = None
    warnings: list = field(default_factory=list)


# --- small helpers ---------------------------------------------------------------------------


def utcnow():
    return dt.datetime.now(dt.UTC)


def _aware(when):
    if when is None:
        return utcnow()
    return when if when.tzinfo else when.replace(tzinfo=dt.UTC)


def _day(when):
    return when.strftime("%Y-%m-%d")


def fingerprint(cert):
    """SHA-256 fingerprint of a certificate, as ``openssl x509 -fingerprint -sha256`` prints it."""
    return ":".join(f"{b:02X}" for b in cert.fingerprint(hashes.SHA256()))


def key_type_of(public_key):
    if isinstance(public_key, ec.EllipticCurvePublicKey):
        return "ec"
    if isinstance(public_key, rsa.RSAPublicKey):
        return "rsa"
    return type(public_key).__name__


def _new_key(key_type):
    if key_type == "ec":
        return ec.generate_private_key(ec.SECP256R1())
    if key_type == "rsa":
        return rsa.generate_private_key(public_exponent=65537, key_size=RSA_BITS)
    raise PkiError(f"key_type must be one of {', '.join(KEY_TYPES)}, got {key_type!r}")


def _spki(public_key):
    return public_key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


def _pkcs8(key):
    return key.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem(label, der):
    b64 = base64.b64encode(der)
    lines = b"\n".join(b64[i:i + 64] for i in range(0, len(b64), 64))
    return b"-----BEGIN " + label.encode() + b"-----\n" + lines + b"\n-----END " + label.encode() + b"-----\n"


def cert_pem(cert):
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certs(data, what="certificates"):
    """Every ``CERTIFICATE`` block in ``data``, in order. Raises PkiError for a damaged block."""
    certs = []
    for number, match in enumerate(_PEM_BLOCK.finditer(data or b""), start=1):
        if match.group(1) not in (b"CERTIFICATE", b"X509 CERTIFICATE", b"TRUSTED CERTIFICATE"):
            continue
        try:
            certs.append(x509.load_pem_x509_certificate(match.group(0)))
        except ValueError as exc:
            raise PkiError(f"{what}: PEM block {number} is not a readable X.509 certificate ({exc})") from None
    return certs


def _read(path):
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _makedirs(path):
    """Create ``path`` (0700) and any missing parents (0700)."""
    missing = []
    probe = os.path.abspath(path)
    while not os.path.isdir(probe):
        missing.append(probe)
        probe = os.path.dirname(probe)
    for directory in reversed(missing):
        with contextlib.suppress(FileExistsError):
            os.mkdir(directory, 0o700)
        os.chmod(directory, 0o700)


@contextlib.contextmanager
def locked(path, timeout=LOCK_TIMEOUT):
    """Hold the CA directory's lock (:func:`files.locked`); a timeout is a :class:`PkiError`."""
    try:
        with files_locked(path, timeout):
            yield
    except LockTimeout as exc:
        raise PkiError(str(exc)) from None


# --- names -----------------------------------------------------------------------------------


def wanted_names(dns_names=(), ip_addresses=()):
    """The set of ``("dns", name)`` / ``("ip", address)`` pairs wanted, normalised.

    DNS names are lower-cased without a trailing dot; addresses are in canonical form.
    """
    names = set()
    for raw in dns_names or ():
        name = str(raw).strip().lower().rstrip(".")
        try:
            ipaddress.ip_address(name)
        except ValueError:
            pass
        else:
            raise PkiError(f"dns_names: {raw!r} is an IP address; list it under ip_addresses")
        if not _DNS_NAME.match(name) or len(name) > 253:
            raise PkiError(f"dns_names: {raw!r} is not a valid DNS name")
        names.add(("dns", name))
    for raw in ip_addresses or ():
        try:
            names.add(("ip", str(ipaddress.ip_address(str(raw).strip()))))
        except ValueError:
            raise PkiError(f"ip_addresses: {raw!r} is not an IP address") from None
    return names


def cert_names(cert):
    """The ``("dns", ...)``/``("ip", ...)`` subject alternative names of ``cert``."""
    try:
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        return set()
    names = {("dns", n.lower().rstrip(".")) for n in san.get_values_for_type(x509.DNSName)}
    names |= {("ip", str(a)) for a in san.get_values_for_type(x509.IPAddress)}
    return names


def _sorted_names(names):
    return sorted(names, key=lambda n: (n[0], n[1]))


def name_list(names):
    """Plain strings (DNS names first, then addresses) for results and messages."""
    return [value for _kind, value in _sorted_names(names)]


def _dns_covered(name, san_dns):
    for pattern in san_dns:
        if pattern == name:
            return True
        if pattern.startswith("*.") and "." in name:
            label, rest = name.split(".", 1)
            if label and label != "*" and rest == pattern[2:]:
                return True
    return False


# --- the CA ----------------------------------------------------------------------------------


def ca_exists(ca_dir):
    return os.path.exists(os.path.join(ca_dir, CA_CERT)) or os.path.exists(os.path.join(ca_dir, CA_KEY))


def load_ca(ca_dir, passphrase=None, passphrase_name="ca_passphrase"):  # noqa: S107 - a variable name
    """Load ``ca.key`` and ``ca.crt`` from ``ca_dir``; PkiError naming the fix when that fails."""
    key_path, cert_path = os.path.join(ca_dir, CA_KEY), os.path.join(ca_dir, CA_CERT)
    key_data, cert_data = _read(key_path), _read(cert_path)
    if key_data is None and cert_data is None:
        raise PkiError(f"there is no CA in {ca_dir} ({CA_KEY} and {CA_CERT} are missing)")
    if key_data is None or cert_data is None:
        have, lost = (CA_CERT, CA_KEY) if key_data is None else (CA_KEY, CA_CERT)
        raise PkiError(f"{ca_dir} holds {have} but not {lost}: restore {lost} from a backup. Removing "
                       f"{have} as well would create a NEW CA that no existing node or client trusts")
    password = passphrase.encode() if passphrase else None
    try:
        key = serialization.load_pem_private_key(key_data, password)
    except TypeError:
        if password is None:
            raise PkiError(f"{key_path} is encrypted: set {passphrase_name} to its passphrase") from None
        raise PkiError(f"{key_path} is not encrypted, but {passphrase_name} is set: leave {passphrase_name} "
                       "empty, or encrypt the key with that passphrase first (openssl pkey -in ca.key "
                       "-aes256 -out ca.key.new, then replace ca.key)") from None
    except ValueError:
        if password is not None and b"ENCRYPTED" in key_data:
            raise PkiError(f"{key_path} could not be decrypted: {passphrase_name} is not its passphrase") from None
        raise PkiError(f"{key_path} is not a readable PEM private key") from None
    except UnsupportedAlgorithm as exc:
        raise PkiError(f"{key_path} uses an unsupported algorithm or encryption ({exc})") from None
    try:
        cert = x509.load_pem_x509_certificate(cert_data)
    except ValueError:
        raise PkiError(f"{cert_path} is not a readable PEM certificate") from None
    if _spki(key.public_key()) != _spki(cert.public_key()):
        raise PkiError(f"{key_path} does not belong to {cert_path}: restore the matching pair from a backup")
    try:
        is_ca = cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
    except x509.ExtensionNotFound:
        is_ca = False
    if not is_ca:
        raise PkiError(f"{cert_path} is not a CA certificate (basicConstraints CA:TRUE is missing)")
    return CA(key=key, cert=cert)


def create_ca(common_name=None, valid_days=3650, key_type="ec", now=None):
    """A new self-signed CA (not written anywhere)."""
    now = _aware(now)
    key = _new_key(key_type)
    name = x509.Name([
        x509.NameAttribute(NameOID.ORGANIZATION_NAME, "metal.kafka"),
        x509.NameAttribute(NameOID.COMMON_NAME, common_name or f"metal.kafka CA {secrets.token_hex(4)}"),
    ])
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(now + dt.timedelta(days=valid_days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                     crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CA(key=key, cert=cert, created=True)


def ensure_ca(ca_dir, passphrase=None, common_name=None, valid_days=3650, key_type="ec", now=None,
              passphrase_name="ca_passphrase"):  # noqa: S107 - a variable name
    """Create the CA in ``ca_dir`` unless it exists, then load it.

    ``ca.key`` is written 0600, encrypted with ``passphrase`` when one is given; ``ca_dir`` is
    0700. Creation and loading happen under an exclusive lock on ``ca_dir/.lock``, so parallel
    processes agree on one CA.
    """
    _makedirs(ca_dir)
    with locked(os.path.join(ca_dir, LOCK)):
        created = False
        if not ca_exists(ca_dir):
            ca = create_ca(common_name, valid_days, key_type, now)
            encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                          else serialization.NoEncryption())
            key_pem = ca.key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)
            os.chmod(ca_dir, 0o700)
            write_file(os.path.join(ca_dir, CA_KEY), key_pem, 0o600)
            write_file(os.path.join(ca_dir, CA_CERT), cert_pem(ca.cert), 0o644)
            created = True
        ca = load_ca(ca_dir, passphrase, passphrase_name)
    ca.created = created
    return ca


# --- host certificates -----------------------------------------------------------------------


def issue(ca, host, dns_names=(), ip_addresses=(), valid_days=MAX_LEAF_DAYS, key_type="ec", now=None):
    """A new key and a certificate for ``host`` signed by ``ca``: ``(key, cert)``.

    Subject CN is ``host`` (left out when longer than 64 characters; the names are in the
    SANs, which is what TLS clients check). The SANs are exactly the wanted names.
    """
    now = _aware(now)
    if not 1 <= valid_days <= MAX_LEAF_DAYS:
        raise PkiError(f"valid_days must be between 1 and {MAX_LEAF_DAYS}, got {valid_days}")
    if ca.cert.not_valid_after_utc <= now:
        raise PkiError(f"the CA expired on {_day(ca.cert.not_valid_after_utc)}: it can issue no certificate; "
                       "a new CA has to be rolled out")
    names = wanted_names(dns_names, ip_addresses)
    if not names:
        raise PkiError(f"no DNS name or IP address given for {host}: set dns_names or ip_addresses")
    key = _new_key(key_type)
    sans = [x509.DNSName(v) if k == "dns" else x509.IPAddress(ipaddress.ip_address(v))
            for k, v in _sorted_names(names)]
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, host)] if 0 < len(host) <= 64 else [])
    try:
        aki = x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(
            ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value)
    except x509.ExtensionNotFound:
        aki = x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.cert.public_key())
    is_rsa = isinstance(key, rsa.RSAPrivateKey)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(ca.cert.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(min(now + dt.timedelta(days=valid_days), ca.cert.not_valid_after_utc))
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.KeyUsage(digital_signature=True, content_commitment=False, key_encipherment=is_rsa,
                                     data_encipherment=False, key_agreement=False, key_cert_sign=False,
                                     crl_sign=False, encipher_only=False, decipher_only=False), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                       critical=False)
        .add_extension(x509.SubjectAlternativeName(sans), critical=not len(subject))
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .add_extension(aki, critical=False)
        .sign(ca.key, hashes.SHA256())
    )
    return key, cert


def signed_by(cert, issuer):
    """True when ``issuer`` is ``cert``'s issuer by name and its key verifies the signature."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True


def names_diff(have, want):
    """``"+10.0.0.5 -old.example"``: what must be added to, and removed from, ``have``."""
    added = [f"+{v}" for v in name_list(want - have)]
    removed = [f"-{v}" for v in name_list(have - want)]
    return " ".join(added + removed)


def needs_reissue(cert, ca_cert, dns_names=(), ip_addresses=(), renew_before_days=30, now=None, key_type=None):
    """``(reissue, reason)`` for an existing host certificate (``None`` when there is none).

    Reissue only when there is none, it is not signed by the current CA, its names differ from
    the wanted ones, its key type differs from ``key_type`` (when given), or it expires within
    ``renew_before_days``. A certificate that already runs until the CA itself expires is not
    reissued (a new one could not last longer); the reason says so.
    """
    now = _aware(now)
    if cert is None:
        return True, "no certificate yet"
    if not signed_by(cert, ca_cert):
        return True, "not signed by the current CA"
    want, have = wanted_names(dns_names, ip_addresses), cert_names(cert)
    if want != have:
        return True, "names changed: " + names_diff(have, want)
    current_type = key_type_of(cert.public_key())
    if key_type and current_type != key_type:
        return True, f"key type changed: {current_type} -> {key_type}"
    not_after = cert.not_valid_after_utc
    left = not_after - now
    if left <= dt.timedelta(days=renew_before_days):
        if left <= dt.timedelta(0):
            return True, f"expired {(-left).days} days ago"
        if not_after >= ca_cert.not_valid_after_utc:
            return False, (f"expires in {left.days} days, together with the CA ({_day(not_after)}): "
                           "a new CA has to be rolled out")
        return True, f"expires in {left.days} days (threshold {renew_before_days})"
    if cert.not_valid_before_utc > now:
        return True, f"not valid before {cert.not_valid_before_utc.isoformat()} (was the clock changed?)"
    return False, f"up to date (expires in {left.days} days)"


# --- bring your own --------------------------------------------------------------------------


@dataclass
class _Bundle:
    errors: list
    warnings: list
    key: object = None
    chain: list = field(default_factory=list)
    cas: list = field(default_factory=list)


def _basic_constraints(cert):
    try:
        return cert.extensions.get_extension_for_class(x509.BasicConstraints).value
    except x509.ExtensionNotFound:
        return None


def _subject(cert):
    return cert.subject.rfc4514_string() or "(empty subject)"


def _check_validity(cert, label, now, min_days, errors, warnings, fix):
    if cert.not_valid_before_utc > now:
        errors.append(f"{label} is not valid before {cert.not_valid_before_utc.isoformat()}: check the "
                      "controller's clock, or wait")
    elif cert.not_valid_after_utc <= now:
        errors.append(f"{label} expired on {_day(cert.not_valid_after_utc)}: {fix}")
    elif cert.not_valid_after_utc - now < dt.timedelta(days=min_days):
        left = (cert.not_valid_after_utc - now).days
        warnings.append(f"{label} expires in {left} days ({_day(cert.not_valid_after_utc)}): {fix}")


def _load_key(key_pem, key_passphrase, errors):
    if not key_pem or not key_pem.strip():
        errors.append("byo.key is empty: give the PEM private key of the certificate")
        return None
    password = key_passphrase.encode() if key_passphrase else None
    try:
        try:
            key = serialization.load_pem_private_key(key_pem, password)
        except TypeError:
            if password is None:
                errors.append("byo.key is encrypted: set byo.key_passphrase to its passphrase")
                return None
            key = serialization.load_pem_private_key(key_pem, None)  # not encrypted: no passphrase needed
    except ValueError:
        if password is not None and b"ENCRYPTED" in key_pem:
            errors.append("byo.key could not be decrypted: byo.key_passphrase is not its passphrase")
        else:
            errors.append("byo.key is not a readable PEM private key (PKCS#8, PKCS#1 RSA or SEC1 EC)")
        return None
    except UnsupportedAlgorithm as exc:
        errors.append(f"byo.key uses an unsupported algorithm or encryption ({exc}): convert it to PKCS#8, e.g. "
                      "openssl pkcs8 -topk8 -v2 aes-256-cbc")
        return None
    if not isinstance(key, (rsa.RSAPrivateKey, ec.EllipticCurvePrivateKey)):
        errors.append(f"byo.key is a {type(key).__name__.lstrip('_')}: Kafka's PEM keystore reads RSA and EC keys "
                      "only; issue the certificate for an RSA or EC key")
        return None
    return key


def _inspect_bundle(ca_bundle_pem, cert_pem_data, key_pem, key_passphrase=None, chain_pem=None, dns_names=(),
                    ip_addresses=(), now=None, min_days=30, host="this host"):
    now = _aware(now)
    errors, warnings = [], []
    out = _Bundle(errors, warnings)
    cas = certs = extra = None
    for label, data, target in (("byo.ca_bundle", ca_bundle_pem, "cas"), ("byo.certificate", cert_pem_data, "certs"),
                                ("byo.chain", chain_pem, "extra")):
        try:
            loaded = load_certs(data, label)
        except PkiError as exc:
            errors.append(str(exc))
            loaded = None
        if target == "cas":
            cas = loaded
        elif target == "certs":
            certs = loaded
        else:
            extra = loaded or []
    if cas == []:
        errors.append("byo.ca_bundle holds no PEM certificate: give the certificate(s) of the CA that issued "
                      "the chain, in PEM")
    if certs == []:
        errors.append("byo.certificate holds no PEM certificate: give the host's certificate in PEM")
    key = _load_key(key_pem, key_passphrase, errors)
    if not certs:
        return out
    leaf, intermediates = certs[0], certs[1:] + extra
    label = f"the certificate for {host} ({_subject(leaf)})"

    if key is not None and _spki(key.public_key()) != _spki(leaf.public_key()):
        errors.append(f"byo.key does not belong to {label}: their public keys differ; give the key the "
                      "certificate was issued for (the first certificate in byo.certificate must be the "
                      "host's own)")
    _check_validity(leaf, label, now, min_days, errors, warnings, "renew it")

    try:
        want = wanted_names(dns_names, ip_addresses)
    except PkiError as exc:
        errors.append(str(exc))
        want = set()
    have = cert_names(leaf)
    san_dns = [v for k, v in have if k == "dns"]
    for kind, value in _sorted_names(want):
        if kind == "dns" and not _dns_covered(value, san_dns):
            errors.append(f"{label} does not cover {value}: add DNS:{value} to its subjectAltName, "
                          "or remove it from dns_names")
        elif kind == "ip" and ("ip", value) not in have:
            errors.append(f"{label} does not cover {value}: add IP:{value} to its subjectAltName "
                          "(a DNS name does not cover an address), or remove it from ip_addresses")

    try:
        eku = leaf.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        eku = None
    if eku is not None and ExtendedKeyUsageOID.SERVER_AUTH not in eku:
        errors.append(f"{label} lacks extendedKeyUsage serverAuth: Java refuses it for a TLS server; "
                      "reissue it with serverAuth (and clientAuth)")
    elif eku is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in eku:
        warnings.append(f"{label} lacks extendedKeyUsage clientAuth: brokers cannot present it when "
                        "ssl.client.auth is required (mutual TLS between nodes)")
    try:
        usage = leaf.extensions.get_extension_for_class(x509.KeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and not usage.digital_signature:
        errors.append(f"{label} lacks keyUsage digitalSignature, which TLS 1.3 and ECDHE need: reissue it "
                      "with digitalSignature")

    # Build the path: leaf -> intermediates (from byo.certificate and byo.chain) -> a CA in the bundle.
    path, current, anchor, pool = [], leaf, None, list(intermediates)
    for _ in range(len(intermediates) + 1):
        anchor = next((c for c in cas or () if signed_by(current, c)), None)
        if anchor is not None:
            break
        parent = next((c for c in pool if c is not current and signed_by(current, c)), None)
        if parent is None:
            break
        path.append(parent)
        pool.remove(parent)
        current = parent
    if anchor is None and cas:
        where = "the certificate" if current is leaf else f"intermediate {_subject(current)}"
        mismatched = [c for c in cas + pool if c.subject == current.issuer and c != current]
        if current is not leaf and current.issuer == current.subject and signed_by(current, current):
            errors.append(f"the chain ends at the self-signed CA {_subject(current)}, which byo.ca_bundle does "
                          "not hold: add it to byo.ca_bundle if it is to be trusted")
        elif mismatched:
            errors.append(f"the chain does not verify: {where} names {current.issuer.rfc4514_string()} as its "
                          "issuer, but the signature does not verify with the key of the certificate of that "
                          "name given: byo.ca_bundle or byo.chain holds a different CA with the same name")
        else:
            errors.append(f"the chain does not verify: nothing in byo.ca_bundle or byo.chain issued {where} "
                          f"(issuer {current.issuer.rfc4514_string()}): add that intermediate to byo.chain, "
                          "or its CA to byo.ca_bundle")
    for below, ca_cert in enumerate(path + ([anchor] if anchor is not None else [])):
        is_anchor = ca_cert is anchor
        what = ("the CA " if is_anchor else "intermediate ") + _subject(ca_cert)
        if is_anchor and ca_cert == leaf:
            break  # a self-signed host certificate trusted directly
        constraints = _basic_constraints(ca_cert)
        if (constraints is None and not is_anchor) or (constraints is not None and not constraints.ca):
            errors.append(f"{what} is not a CA (basicConstraints CA:TRUE is missing), so it cannot issue "
                          "certificates: the chain is wrong")
        elif constraints is not None and constraints.path_length is not None and below > constraints.path_length:
            errors.append(f"{what} allows {constraints.path_length} intermediate(s) below it (pathlen), the chain "
                          f"has {below}")
        try:
            usage = ca_cert.extensions.get_extension_for_class(x509.KeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is not None and not usage.key_cert_sign:
            errors.append(f"{what} lacks keyUsage keyCertSign, so it cannot issue certificates")
        _check_validity(ca_cert, what, now, min_days, errors, warnings,
                        "renew it" if is_anchor else "renew it and update byo.chain")

    out.key, out.cas = key, cas or []
    out.chain = [leaf] + path
    return out


def validate_bundle(ca_bundle_pem, cert_pem, key_pem, key_passphrase=None, chain_pem=None, dns_names=(),
                    ip_addresses=(), now=None, min_days=30, host="this host"):
    """Check a bring-your-own certificate; the list of errors (empty when it is usable).

    ``cert_pem`` starts with the host's certificate and may go on with intermediates;
    ``chain_pem`` may hold (more) intermediates; ``ca_bundle_pem`` holds the CA(s) to trust.
    Checks: the key is readable (with ``key_passphrase``) and belongs to the certificate; the
    chain verifies, signature by signature, from the leaf through intermediates to a CA in the
    bundle, each CA being one (basicConstraints, pathlen, keyCertSign); every wanted name and
    address is in the SANs (``*.example.com`` covers one label); the certificates are valid now.
    Expiry within ``min_days`` is a warning (``result.warnings``), not an error.
    """
    found = _inspect_bundle(ca_bundle_pem, cert_pem, key_pem, key_passphrase, chain_pem, dns_names, ip_addresses,
                            now, min_days, host)
    return Findings(found.errors, found.warnings)


# --- keystores -------------------------------------------------------------------------------

_Tlv = namedtuple("_Tlv", "tag raw body")


def _der_items(data):
    items, i = [], 0
    while i < len(data):
        if i + 2 > len(data):
            raise PkiError("malformed DER: truncated header")
        tag, length, j = data[i], data[i + 1], i + 2
        if length & 0x80:
            count = length & 0x7F
            if not 1 <= count <= 4:
                raise PkiError("malformed DER: unsupported length")
            length, j = int.from_bytes(data[j:j + count], "big"), j + count
        if j + length > len(data):
            raise PkiError("malformed DER: truncated value")
        items.append(_Tlv(tag, data[i:j + length], data[j:j + length]))
        i = j + length
    return items


def _data_content(content_info):
    """The items inside a PKCS#7 ``data`` ContentInfo's SEQUENCE, or None for another content type."""
    oid, explicit = _der_items(content_info.body)[:2]
    if oid.raw != _OID_DATA:
        return None
    (octets,) = _der_items(explicit.body)
    (inner,) = _der_items(octets.body)
    return _der_items(inner.body)


def _shrouded_key(pfx):
    """The EncryptedPrivateKeyInfo (DER) of the PKCS#12 key bag in ``pfx``."""
    try:
        (top,) = _der_items(pfx)
        _version, auth_safe = _der_items(top.body)[:2]
        for content_info in _data_content(auth_safe) or ():
            for bag in _data_content(content_info) or ():
                bag_id, value = _der_items(bag.body)[:2]
                if bag_id.raw == _OID_SHROUDED_KEY_BAG:
                    (epki,) = _der_items(value.body)
                    return epki.raw
    except (ValueError, IndexError) as exc:
        raise PkiError(f"unexpected PKCS#12 layout from cryptography: {exc}") from None
    raise PkiError("unexpected PKCS#12 layout from cryptography: no shrouded key bag")


def _epki_algorithm(epki):
    (top,) = _der_items(epki)
    algorithm = _der_items(top.body)[0]
    return _der_items(algorithm.body)[0].raw


def check_key_password(password, name="key_password"):
    """Kafka reads ``ssl.key.password`` from a Java properties file (ISO-8859-1), and PKCS#12 PBE
    encodes it as BMPString: printable ASCII without spaces is the safe common ground."""
    if not password:
        raise PkiError(f"{name} is empty")
    if not all(0x21 <= ord(ch) <= 0x7E for ch in password):
        raise PkiError(f"{name} must be printable ASCII without spaces (Kafka reads it from a properties file)")


def encrypt_private_key(key, password):
    """DER EncryptedPrivateKeyInfo of ``key`` under pbeWithSHA1And3-KeyTripleDES-CBC.

    ``cryptography`` writes PKCS#8 encryption only as PBES2, which Java 17 cannot decrypt through
    ``EncryptedPrivateKeyInfo.getAlgName()``; it writes the PKCS#12 scheme inside a PKCS#12
    file's shrouded key bag, so the key is serialised as PKCS#12 and that bag taken out. The
    result is decrypted again and compared before it is used.
    """
    check_key_password(password)
    encryption = (serialization.PrivateFormat.PKCS12.encryption_builder()
                  .kdf_rounds(KDF_ROUNDS)
                  .key_cert_algorithm(pkcs12.PBES.PBESv1SHA1And3KeyTripleDESCBC)
                  .hmac_hash(hashes.SHA1())  # noqa: S303 - the MAC of a throw-away PKCS#12 wrapper
                  .build(password.encode()))
    epki = _shrouded_key(pkcs12.serialize_key_and_certificates(None, key, None, None, encryption))
    if _epki_algorithm(epki) != _OID_PBE_SHA1_3DES:
        raise PkiError("cryptography did not encrypt the key with pbeWithSHA1And3-KeyTripleDES-CBC")
    if _pkcs8(serialization.load_der_private_key(epki, password.encode())) != _pkcs8(key):
        raise PkiError("the encrypted key does not decrypt to the original key")
    return epki


def keystore_pem(key, chain, password):
    """The PEM keystore: the key as ``ENCRYPTED PRIVATE KEY`` (Java-17-readable), then ``chain``.

    ``chain`` is the leaf certificate first, then its intermediates. The salt is random, so two
    calls give different bytes: keep the file and check it with :func:`keystore_matches`.
    """
    if not chain:
        raise PkiError("a keystore needs at least the host's certificate")
    if _spki(key.public_key()) != _spki(chain[0].public_key()):
        raise PkiError("the private key does not belong to the first certificate of the chain")
    return _pem("ENCRYPTED PRIVATE KEY", encrypt_private_key(key, password)) + b"".join(cert_pem(c) for c in chain)


def _split_keystore(data):
    blocks = list(_PEM_BLOCK.finditer(data or b""))
    if not blocks or blocks[0].group(1) != b"ENCRYPTED PRIVATE KEY" or blocks[0].start() != 0:
        raise PkiError("not a keystore written by metal.kafka (it must start with ENCRYPTED PRIVATE KEY)")
    der = base64.b64decode(b"".join(blocks[0].group(2).split()))
    return der, data[blocks[0].end():]


def read_keystore(data, password):
    """``(key, certificates)`` from a keystore written by :func:`keystore_pem`."""
    der, rest = _split_keystore(data)
    try:
        key = serialization.load_der_private_key(der, password.encode() if password else None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        raise PkiError("the keystore's key cannot be decrypted with the key password") from None
    return key, load_certs(rest, "keystore")


def keystore_matches(data, key, chain, password):
    """True when ``data`` is exactly the keystore :func:`keystore_pem` would write for these inputs
    (same key, same certificates in the same order, same password and encryption scheme)."""
    try:
        der, rest = _split_keystore(data)
        if _epki_algorithm(der) != _OID_PBE_SHA1_3DES or rest != b"".join(cert_pem(c) for c in chain):
            return False
        existing, _certs = read_keystore(data, password)
    except (PkiError, ValueError):
        return False
    return _pkcs8(existing) == _pkcs8(key)


def generate_password():
    """A random key password: 32 characters of ``[A-Za-z0-9_-]``, safe in a properties file."""
    return secrets.token_urlsafe(24)


# --- one host, end to end --------------------------------------------------------------------


def host_dir(ca_dir, host):
    if not host or not _HOST_DIR_NAME.match(host) or ".." in host:
        raise PkiError(f"host {host!r} cannot name a directory: use letters, digits, '.', '-', '_' or ':'")
    return os.path.join(ca_dir, HOSTS_DIR, host)


def _result_paths(ca_dir, host):
    directory = host_dir(ca_dir, host)
    return dict(keystore=os.path.join(directory, KEYSTORE), truststore=os.path.join(directory, TRUSTSTORE),
                key_password_file=os.path.join(directory, KEY_PASSWORD_FILE))


def _current(directory, passwords):
    """The key and certificates of the keystore in ``directory``, trying each password; (None, [])."""
    data = _read(os.path.join(directory, KEYSTORE))
    if data is None:
        return None, []
    for password in passwords:
        if password:
            with contextlib.suppress(PkiError, ValueError):
                return read_keystore(data, password)
    return None, []


def ensure_host(ca_dir, host, dns_names=(), ip_addresses=(), *, ca_passphrase=None, valid_days=MAX_LEAF_DAYS,
                renew_before_days=30, key_password=None, key_type="ec", ca_common_name=None, byo=None,
                check_mode=False, now=None):
    """Make ``<ca_dir>/hosts/<host>/`` hold an up-to-date keystore, truststore and key password.

    ``byo`` (bring your own) is a dict of PEM bytes ``ca_bundle``, ``certificate``, ``key``, and
    optionally ``chain`` and ``key_passphrase`` (str); no CA is created or used then. In check
    mode nothing is written (not even the CA or a lock file) and ``changed`` tells what would be.
    Raises PkiError (BundleError for an unusable bundle) with the fix in its message.
    """
    now = _aware(now)
    paths = _result_paths(ca_dir, host)
    directory = os.path.dirname(paths["keystore"])
    want = wanted_names(dns_names, ip_addresses)
    if key_type not in KEY_TYPES:
        raise PkiError(f"key_type must be one of {', '.join(KEY_TYPES)}, got {key_type!r}")
    if key_password:
        check_key_password(key_password)
    warnings, result = [], HostResult(changed=False, reason="", **paths)
    result.names, result.warnings = name_list(want), warnings

    if byo is not None:
        bundle = _inspect_bundle(byo.get("ca_bundle"), byo.get("certificate"), byo.get("key"),
                                 byo.get("key_passphrase"), byo.get("chain"), dns_names, ip_addresses, now,
                                 renew_before_days, host)
        warnings += bundle.warnings
        if bundle.errors:
            raise BundleError(bundle.errors, bundle.warnings)
        truststore = b"".join(cert_pem(c) for c in bundle.cas)
        result.ca_not_after = min(c.not_valid_after_utc for c in bundle.cas).isoformat() if bundle.cas else None
        ca = None
    else:
        if not want:
            raise PkiError(f"no DNS name or IP address given for {host}: set dns_names or ip_addresses")
        if not 1 <= valid_days <= MAX_LEAF_DAYS:
            raise PkiError(f"valid_days must be between 1 and {MAX_LEAF_DAYS}, got {valid_days}")
        if not 0 <= renew_before_days < valid_days:
            raise PkiError(f"renew_before_days ({renew_before_days}) must be at least 0 and less than valid_days "
                           f"({valid_days}), or every run would reissue")
        result.ca_certificate = os.path.join(ca_dir, CA_CERT)
        if check_mode and not ca_exists(ca_dir):
            result.changed = True
            result.reason = f"would create a new CA in {ca_dir} and issue a certificate for {host}"
            return result
        if check_mode:
            ca = load_ca(ca_dir, ca_passphrase)
        else:
            ca = ensure_ca(ca_dir, ca_passphrase, ca_common_name, key_type=key_type, now=now)
        result.ca_created = ca.created
        if ca.cert.not_valid_after_utc < now + dt.timedelta(days=valid_days):
            warnings.append(f"the CA in {ca_dir} expires on {_day(ca.cert.not_valid_after_utc)}, so host "
                            "certificates are cut short to that day: plan a new CA")
        truststore = cert_pem(ca.cert)
        result.ca_not_after = ca.cert.not_valid_after_utc.isoformat()

    if check_mode:
        lock = contextlib.nullcontext()
    else:
        _makedirs(directory)
        lock = locked(os.path.join(directory, LOCK))
    with lock:
        stored = (_read(paths["key_password_file"]) or b"").decode("ascii", "replace").strip()
        password = key_password or stored
        current_key, current_certs = _current(directory, [stored, key_password])
        reasons = []
        if ca is not None:
            leaf = current_certs[0] if current_key is not None and current_certs else None
            if leaf is not None and _spki(leaf.public_key()) != _spki(current_key.public_key()):
                leaf = None
            reissue, why = needs_reissue(leaf, ca.cert, dns_names, ip_addresses, renew_before_days, now, key_type)
            if leaf is None and os.path.exists(paths["keystore"]):
                why = f"the existing {KEYSTORE} cannot be read with the key password"
            if reissue:
                if check_mode:
                    result.changed = True
                    result.reason = f"would reissue: {why}"
                    result.key_password = password
                    return result
                key, new_leaf = issue(ca, host, dns_names, ip_addresses, valid_days, key_type, now)
                chain = [new_leaf]
                reasons.append(f"issued: {why}")
            else:
                key, chain = current_key, [leaf]
                reasons.append(why)
        else:
            key, chain = bundle.key, bundle.chain
            same = current_certs[:1] == chain[:1] and current_key is not None and _pkcs8(current_key) == _pkcs8(key)
            reasons.append("up to date" if same else "certificate changed" if current_certs else "no keystore yet")

        result.not_after = chain[0].not_valid_after_utc.isoformat()
        result.fingerprint = fingerprint(chain[0])
        result.names = name_list(cert_names(chain[0])) if byo is not None else name_list(want)

        if not password:
            if check_mode:
                reasons.append("would generate a key password")
                result.changed = True
            else:
                password = generate_password()
        result.key_password = password or ""

        existing = _read(paths["keystore"])
        store_ok = existing is not None and bool(password) and keystore_matches(existing, key, chain, password)
        files = [
            (paths["key_password_file"], (password + "\n").encode() if password else None, 0o600, "key-password"),
            (paths["keystore"], None if store_ok else "build", 0o600, "keystore.pem"),
            (paths["truststore"], truststore, 0o644, "truststore.pem"),
        ]
        updated = []
        for path, data, mode, label in files:
            if data is None:
                continue
            if check_mode:
                on_disk = _read(path)
                if data == "build" or on_disk != data or os.stat(path).st_mode & 0o7777 != mode:
                    updated.append(label)
                continue
            if data == "build":
                data = keystore_pem(key, chain, password)
            if write_file(path, data, mode):
                updated.append(label)
        if updated:
            result.changed = True
            issued = reasons[0].startswith("issued")
            if not issued:
                reasons.append(("would update " if check_mode else "updated ") + ", ".join(updated))
        result.reason = "; ".join(reasons)
        return result
