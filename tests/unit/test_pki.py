"""The controller-side TLS machinery: the CA, host certificates, bring-your-own checks, keystores."""

import datetime as dt
import ipaddress
import json
import multiprocessing
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import pki
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

REPO = Path(__file__).resolve().parents[2]
NOW = dt.datetime(2030, 6, 1, 12, 0, tzinfo=dt.UTC)


def mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


# --- helpers that play "another CA" for the bring-your-own cases --------------------------------


def make_ca(name, parent=None, pathlen=1, days=3650, not_before=None, ca=True, key=None):
    """A CA certificate (self-signed, or signed by ``parent``): ``(key, cert)``."""
    key = key or ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
    issuer_key, issuer_name = (parent[0], parent[1].subject) if parent else (key, subject)
    start = not_before or NOW - dt.timedelta(days=1)
    cert = (x509.CertificateBuilder().subject_name(subject).issuer_name(issuer_name).public_key(key.public_key())
            .serial_number(x509.random_serial_number()).not_valid_before(start)
            .not_valid_after(start + dt.timedelta(days=days))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen if ca else None), critical=True)
            .sign(issuer_key, hashes.SHA256()))
    return key, cert


def make_leaf(issuer, dns=("kafka1.example.com",), ips=(), days=365, not_before=None, key=None, eku=None):
    key = key or ec.generate_private_key(ec.SECP256R1())
    start = not_before or NOW - dt.timedelta(days=1)
    sans = [x509.DNSName(d) for d in dns] + [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    builder = (x509.CertificateBuilder()
               .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "kafka1")]))
               .issuer_name(issuer[1].subject).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(start)
               .not_valid_after(start + dt.timedelta(days=days))
               .add_extension(x509.SubjectAlternativeName(sans), critical=False)
               .add_extension(x509.ExtendedKeyUsage(eku or [ExtendedKeyUsageOID.SERVER_AUTH,
                                                            ExtendedKeyUsageOID.CLIENT_AUTH]), critical=False))
    return key, builder.sign(issuer[0], hashes.SHA256())


def pem(*certs):
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in certs)


def key_pem(key, passphrase=None):
    encryption = (serialization.BestAvailableEncryption(passphrase.encode()) if passphrase
                  else serialization.NoEncryption())
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, encryption)


@pytest.fixture(scope="module")
def company():
    """A root CA, an intermediate, and a leaf issued by the intermediate."""
    root = make_ca("Company Root", pathlen=1)
    inter = make_ca("Company Issuing CA", parent=root, pathlen=0)
    leaf = make_leaf(inter, dns=("kafka1.example.com",), ips=("10.0.0.5",))
    return root, inter, leaf


def check(company, **overrides):
    root, inter, leaf = company
    args = dict(ca_bundle_pem=pem(root[1]), cert_pem=pem(leaf[1]), key_pem=key_pem(leaf[0]), key_passphrase=None,
                chain_pem=pem(inter[1]), dns_names=["kafka1.example.com"], ip_addresses=["10.0.0.5"], now=NOW,
                min_days=30, host="kafka1")
    args.update(overrides)
    return pki.validate_bundle(**args)


# --- the CA ------------------------------------------------------------------------------------


def test_ca_is_created_once_and_loaded_afterwards(tmp_path):
    ca_dir = tmp_path / "pki"
    first = pki.ensure_ca(str(ca_dir))
    second = pki.ensure_ca(str(ca_dir))
    assert first.created and not second.created
    assert first.cert == second.cert
    assert mode(ca_dir) == 0o700 and mode(ca_dir / "ca.key") == 0o600
    assert b"BEGIN PRIVATE KEY" in (ca_dir / "ca.key").read_bytes()  # no passphrase: unencrypted, 0600 in 0700


def test_ca_certificate_profile(tmp_path):
    ca = pki.ensure_ca(str(tmp_path))
    ext = ca.cert.extensions
    constraints = ext.get_extension_for_class(x509.BasicConstraints)
    assert constraints.critical and constraints.value.ca and constraints.value.path_length == 0
    usage = ext.get_extension_for_class(x509.KeyUsage)
    assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign and not usage.value.digital_signature
    assert ext.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert isinstance(ca.key, ec.EllipticCurvePrivateKey) and ca.key.curve.name == "secp256r1"
    assert (ca.cert.not_valid_after_utc - ca.cert.not_valid_before_utc).days >= 3650
    assert ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value.startswith("metal.kafka CA ")


def test_rsa_ca(tmp_path):
    ca = pki.ensure_ca(str(tmp_path), key_type="rsa", common_name="Lab CA")
    assert isinstance(ca.key, rsa.RSAPrivateKey) and ca.key.key_size == 3072
    assert ca.cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "Lab CA"


def test_encrypted_ca_and_passphrase_errors(tmp_path):
    pki.ensure_ca(str(tmp_path), passphrase="correct horse")
    assert b"BEGIN ENCRYPTED PRIVATE KEY" in (tmp_path / "ca.key").read_bytes()
    assert pki.load_ca(str(tmp_path), "correct horse").cert
    with pytest.raises(pki.PkiError, match="could not be decrypted: ca_passphrase is not its passphrase"):
        pki.ensure_ca(str(tmp_path), passphrase="wrong")
    with pytest.raises(pki.PkiError, match="is encrypted: set ca_passphrase"):
        pki.load_ca(str(tmp_path))
    with pytest.raises(pki.PkiError, match="kafka_tls_ca_passphrase"):
        pki.load_ca(str(tmp_path), "wrong", passphrase_name="kafka_tls_ca_passphrase")


def test_unencrypted_ca_with_a_passphrase_is_an_error(tmp_path):
    pki.ensure_ca(str(tmp_path))
    with pytest.raises(pki.PkiError, match="is not encrypted, but ca_passphrase is set"):
        pki.load_ca(str(tmp_path), "something")


def test_half_a_ca_is_never_replaced(tmp_path):
    pki.ensure_ca(str(tmp_path))
    (tmp_path / "ca.key").unlink()
    with pytest.raises(pki.PkiError, match="holds ca.crt but not ca.key: restore ca.key"):
        pki.ensure_ca(str(tmp_path))
    assert not (tmp_path / "ca.key").exists()


def _issue_in_a_process(ca_dir, host, barrier, queue):
    barrier.wait()
    result = pki.ensure_host(ca_dir, host, [f"{host}.example.com"])
    queue.put((host, result.ca_created, result.fingerprint))


# fork on purpose (the children inherit the monkeypatched slow create); pytest-xdist's worker threads
# do not touch what the children use
@pytest.mark.filterwarnings("ignore:This process .* is multi-threaded:DeprecationWarning")
def test_parallel_processes_create_one_ca(tmp_path, monkeypatch):
    real_create = pki.create_ca

    def slow_create(*args, **kwargs):  # widen the window in which a missing lock would show
        time.sleep(0.3)
        return real_create(*args, **kwargs)

    monkeypatch.setattr(pki, "create_ca", slow_create)
    ctx = multiprocessing.get_context("fork")
    hosts = [f"kafka{i}" for i in range(6)]
    barrier, queue = ctx.Barrier(len(hosts)), ctx.Queue()
    procs = [ctx.Process(target=_issue_in_a_process, args=(str(tmp_path), h, barrier, queue)) for h in hosts]
    for p in procs:
        p.start()
    results = [queue.get(timeout=60) for _ in procs]
    for p in procs:
        p.join(timeout=60)
        assert p.exitcode == 0
    assert sum(created for _h, created, _f in results) == 1
    ca = pki.load_ca(str(tmp_path))
    for host in hosts:
        store = (tmp_path / "hosts" / host / "keystore.pem").read_bytes()
        password = (tmp_path / "hosts" / host / "key-password").read_text().strip()
        _key, certs = pki.read_keystore(store, password)
        assert pki.signed_by(certs[0], ca.cert)
        assert (tmp_path / "hosts" / host / "truststore.pem").read_bytes() == (tmp_path / "ca.crt").read_bytes()


def test_lock_excludes_another_process(tmp_path):
    lock = tmp_path / ".lock"
    script = ("import sys, time; sys.path[:0] = " + repr(sys.path) + "\n"
              "import kafka_metal\n"
              "from ansible_collections.metal.kafka.plugins.module_utils import pki\n"
              f"with pki.locked({str(lock)!r}):\n"
              "    print('held', flush=True); time.sleep(1)\n")
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    started = time.monotonic()
    with pki.locked(str(lock)):
        waited = time.monotonic() - started
    child.wait(timeout=10)
    assert waited > 0.5
    child = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, text=True)
    assert child.stdout.readline().strip() == "held"
    try:
        with pytest.raises(pki.PkiError, match="could not lock"), pki.locked(str(lock), timeout=0.2):
            pass
    finally:
        child.wait(timeout=10)


# --- issuing and reissuing ---------------------------------------------------------------------


@pytest.fixture
def ca(tmp_path):
    return pki.ensure_ca(str(tmp_path / "pki"), now=NOW)


def test_issued_certificate_profile(ca):
    key, cert = pki.issue(ca, "kafka1", ["Kafka1.Example.com."], ["10.0.0.5", "fd00::0005"], now=NOW)
    assert isinstance(key, ec.EllipticCurvePrivateKey)
    assert cert.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == "kafka1"
    assert pki.cert_names(cert) == {("dns", "kafka1.example.com"), ("ip", "10.0.0.5"), ("ip", "fd00::5")}
    ext = cert.extensions
    assert list(ext.get_extension_for_class(x509.ExtendedKeyUsage).value) == [
        ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]
    usage = ext.get_extension_for_class(x509.KeyUsage).value
    assert usage.digital_signature and not usage.key_encipherment and not usage.key_cert_sign
    assert not ext.get_extension_for_class(x509.BasicConstraints).value.ca
    assert (ext.get_extension_for_class(x509.AuthorityKeyIdentifier).value.key_identifier
            == ca.cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest)
    assert ext.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    assert cert.not_valid_after_utc == NOW + dt.timedelta(days=825)
    assert pki.signed_by(cert, ca.cert)


def test_rsa_host_key_has_key_encipherment(ca):
    key, cert = pki.issue(ca, "kafka1", ["kafka1"], key_type="rsa", now=NOW)
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 3072
    assert cert.extensions.get_extension_for_class(x509.KeyUsage).value.key_encipherment


def test_validity_limits(ca):
    with pytest.raises(pki.PkiError, match="between 1 and 825"):
        pki.issue(ca, "kafka1", ["kafka1"], valid_days=826, now=NOW)
    with pytest.raises(pki.PkiError, match="is an IP address; list it under ip_addresses"):
        pki.issue(ca, "kafka1", ["10.0.0.5"], now=NOW)
    with pytest.raises(pki.PkiError, match="not an IP address"):
        pki.issue(ca, "kafka1", [], ["kafka1"], now=NOW)


def test_needs_reissue(ca):
    names = dict(dns_names=["kafka1.example.com", "old.example"], ip_addresses=["10.0.0.4"])
    _key, cert = pki.issue(ca, "kafka1", now=NOW, **names)
    assert pki.needs_reissue(None, ca.cert, **names) == (True, "no certificate yet")
    assert pki.needs_reissue(cert, ca.cert, now=NOW, **names) == (False, "up to date (expires in 825 days)")
    # The same names in another order and spelling are the same names.
    assert not pki.needs_reissue(cert, ca.cert, ["OLD.example.", "kafka1.example.com"], ["10.0.0.4"], now=NOW)[0]
    assert pki.needs_reissue(cert, ca.cert, ["kafka1.example.com"], ["10.0.0.4", "10.0.0.5"], now=NOW) == (
        True, "names changed: +10.0.0.5 -old.example")
    near = cert.not_valid_after_utc - dt.timedelta(days=12, hours=1)
    assert pki.needs_reissue(cert, ca.cert, renew_before_days=30, now=near, **names) == (
        True, "expires in 12 days (threshold 30)")
    assert not pki.needs_reissue(cert, ca.cert, renew_before_days=10, now=near, **names)[0]
    assert pki.needs_reissue(cert, ca.cert, now=cert.not_valid_after_utc + dt.timedelta(days=3), **names) == (
        True, "expired 3 days ago")
    other = pki.create_ca(now=NOW)
    assert pki.needs_reissue(cert, other.cert, now=NOW, **names) == (True, "not signed by the current CA")
    assert pki.needs_reissue(cert, ca.cert, now=NOW, key_type="rsa", **names) == (
        True, "key type changed: ec -> rsa")


def test_a_ca_near_its_end_caps_host_certificates_without_reissue_loops(tmp_path):
    ca = pki.ensure_ca(str(tmp_path), valid_days=100, now=NOW)
    _key, cert = pki.issue(ca, "kafka1", ["kafka1"], now=NOW)
    assert cert.not_valid_after_utc == ca.cert.not_valid_after_utc
    reissue, reason = pki.needs_reissue(cert, ca.cert, ["kafka1"], now=cert.not_valid_after_utc - dt.timedelta(days=5))
    assert not reissue and "together with the CA" in reason
    result = pki.ensure_host(str(tmp_path), "kafka1", ["kafka1"], now=NOW)
    assert any("certificates are cut short" in w for w in result.warnings)


# --- bring your own ----------------------------------------------------------------------------


def test_good_bundle_with_intermediate(company):
    assert check(company) == []
    root, inter, leaf = company
    # the intermediate may instead follow the leaf in the certificate file
    assert check(company, cert_pem=pem(leaf[1], inter[1]), chain_pem=None) == []


def test_key_mismatch(company):
    errors = check(company, key_pem=key_pem(ec.generate_private_key(ec.SECP256R1())))
    assert len(errors) == 1 and "byo.key does not belong to the certificate for kafka1" in errors[0]


def test_missing_san(company):
    errors = check(company, dns_names=["kafka1.example.com", "kafka1.other.example"],
                   ip_addresses=["10.0.0.5", "10.0.0.6"])
    assert errors == [
        "the certificate for kafka1 (CN=kafka1) does not cover kafka1.other.example: add DNS:kafka1.other.example "
        "to its subjectAltName, or remove it from dns_names",
        "the certificate for kafka1 (CN=kafka1) does not cover 10.0.0.6: add IP:10.0.0.6 to its subjectAltName "
        "(a DNS name does not cover an address), or remove it from ip_addresses",
    ]


def test_expired_not_yet_valid_and_expiring_soon(company):
    root, inter, _leaf = company
    old = make_leaf(inter, ips=("10.0.0.5",), not_before=NOW - dt.timedelta(days=400), days=365)
    errors = check(company, cert_pem=pem(old[1]), key_pem=key_pem(old[0]))
    assert len(errors) == 1 and f"expired on {old[1].not_valid_after_utc:%Y-%m-%d}: renew it" in errors[0]
    future = make_leaf(inter, ips=("10.0.0.5",), not_before=NOW + dt.timedelta(days=2))
    errors = check(company, cert_pem=pem(future[1]), key_pem=key_pem(future[0]))
    assert len(errors) == 1 and "is not valid before" in errors[0]
    soon = make_leaf(inter, ips=("10.0.0.5",), not_before=NOW - dt.timedelta(days=355), days=365)
    findings = check(company, cert_pem=pem(soon[1]), key_pem=key_pem(soon[0]))
    assert findings == [] and "expires in 10 days" in findings.warnings[0]


def test_chain_that_does_not_verify(company):
    errors = check(company, chain_pem=None)
    assert len(errors) == 1
    assert errors[0].startswith("the chain does not verify: nothing in byo.ca_bundle or byo.chain issued the "
                                "certificate (issuer CN=Company Issuing CA)")
    # an impostor with the intermediate's name
    impostor = make_ca("Company Issuing CA", parent=make_ca("Company Root"), pathlen=0)
    errors = check(company, chain_pem=pem(impostor[1]))
    assert len(errors) == 1 and "different CA with the same name" in errors[0]
    # the root given in the chain, but not in the bundle
    root, inter, _leaf = company
    errors = check(company, chain_pem=pem(inter[1], root[1]), ca_bundle_pem=pem(make_ca("Other Root")[1]))
    assert errors == ["the chain ends at the self-signed CA CN=Company Root, which byo.ca_bundle does not hold: "
                      "add it to byo.ca_bundle if it is to be trusted"]
    assert check(company, chain_pem=pem(inter[1], root[1])) == []  # a root in the chain as well is harmless
    # a bundle with another root
    errors = check(company, ca_bundle_pem=pem(make_ca("Other Root")[1]))
    assert len(errors) == 1 and "nothing in byo.ca_bundle or byo.chain issued intermediate" in errors[0]


def test_ca_constraints_are_checked():
    root = make_ca("Root", pathlen=0)
    inter = make_ca("Issuing", parent=root, pathlen=0)
    leaf = make_leaf(inter)
    errors = pki.validate_bundle(pem(root[1]), pem(leaf[1]), key_pem(leaf[0]), None, pem(inter[1]),
                                 ["kafka1.example.com"], [], NOW)
    assert len(errors) == 1 and "allows 0 intermediate(s) below it (pathlen), the chain has 1" in errors[0]
    root = make_ca("Root")
    not_ca = make_ca("Issuing", parent=root, ca=False)
    leaf = make_leaf(not_ca)
    errors = pki.validate_bundle(pem(root[1]), pem(leaf[1]), key_pem(leaf[0]), None, pem(not_ca[1]),
                                 ["kafka1.example.com"], [], NOW)
    assert any("is not a CA" in e for e in errors)


def test_rsa_chain_verifies():
    root = make_ca("RSA Root", key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    leaf = make_leaf(root, key=rsa.generate_private_key(public_exponent=65537, key_size=2048))
    assert pki.validate_bundle(pem(root[1]), pem(leaf[1]), key_pem(leaf[0]), None, None,
                               ["kafka1.example.com"], [], NOW) == []


def test_wildcards_cover_one_label(company):
    root, inter, _leaf = company
    wild = make_leaf(inter, dns=("*.kafka.example.com",))
    ok = dict(cert_pem=pem(wild[1]), key_pem=key_pem(wild[0]), ip_addresses=[])
    assert check(company, dns_names=["b1.kafka.example.com", "B2.kafka.example.com"], **ok) == []
    errors = check(company, dns_names=["a.b1.kafka.example.com", "kafka.example.com"], **ok)
    assert [e.split(": add")[0].rsplit(" ", 1)[-1] for e in errors] == ["a.b1.kafka.example.com", "kafka.example.com"]


def test_encrypted_byo_key(company):
    _root, _inter, leaf = company
    locked = key_pem(leaf[0], "s3cret")
    assert check(company, key_pem=locked, key_passphrase="s3cret") == []
    assert check(company, key_pem=locked) == ["byo.key is encrypted: set byo.key_passphrase to its passphrase"]
    assert check(company, key_pem=locked, key_passphrase="nope") == [
        "byo.key could not be decrypted: byo.key_passphrase is not its passphrase"]
    assert check(company, key_pem=key_pem(leaf[0]), key_passphrase="unneeded") == []


def test_unreadable_and_unsupported_inputs(company):
    root = company[0]
    assert check(company, cert_pem=b"nothing here") == [
        "byo.certificate holds no PEM certificate: give the host's certificate in PEM"]
    assert check(company, ca_bundle_pem=b"")[0].startswith("byo.ca_bundle holds no PEM certificate")
    broken = b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
    assert "PEM block 1 is not a readable X.509 certificate" in check(company, ca_bundle_pem=broken)[0]
    ed_key = ed25519.Ed25519PrivateKey.generate()
    ed_leaf = make_leaf((root[0], root[1]), key=ed_key)
    errors = check(company, cert_pem=pem(ed_leaf[1]), key_pem=key_pem(ed_key), chain_pem=None, ip_addresses=[])
    assert len(errors) == 1 and "reads RSA and EC keys only" in errors[0]


def test_leaf_usage_checks(company):
    _root, inter, _leaf = company
    client_only = make_leaf(inter, ips=("10.0.0.5",), eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    errors = check(company, cert_pem=pem(client_only[1]), key_pem=key_pem(client_only[0]))
    assert len(errors) == 1 and "lacks extendedKeyUsage serverAuth" in errors[0]
    server_only = make_leaf(inter, ips=("10.0.0.5",), eku=[ExtendedKeyUsageOID.SERVER_AUTH])
    findings = check(company, cert_pem=pem(server_only[1]), key_pem=key_pem(server_only[0]))
    assert findings == [] and "lacks extendedKeyUsage clientAuth" in findings.warnings[0]


def test_every_problem_is_listed_at_once(company):
    other_key = key_pem(ec.generate_private_key(ec.SECP256R1()))
    errors = check(company, key_pem=other_key, chain_pem=None, ip_addresses=["10.0.0.9"])
    assert len(errors) == 3


# --- keystores ---------------------------------------------------------------------------------


def test_keystore_format_and_round_trip(ca):
    key, cert = pki.issue(ca, "kafka1", ["kafka1"], now=NOW)
    store = pki.keystore_pem(key, [cert], "pw-123")
    assert store.startswith(b"-----BEGIN ENCRYPTED PRIVATE KEY-----\n")
    assert store.count(b"-----BEGIN CERTIFICATE-----") == 1 and store.endswith(pki.cert_pem(cert))
    der, _rest = pki._split_keystore(store)
    assert pki._epki_algorithm(der) == bytes.fromhex("060a2a864886f70d010c0103")  # pbeWithSHA1And3-KeyTripleDES-CBC
    loaded, certs = pki.read_keystore(store, "pw-123")
    assert pki._pkcs8(loaded) == pki._pkcs8(key) and certs == [cert]
    with pytest.raises(pki.PkiError, match="cannot be decrypted"):
        pki.read_keystore(store, "other")
    assert pki.keystore_matches(store, key, [cert], "pw-123")
    assert not pki.keystore_matches(store, key, [cert], "pw-124")
    assert not pki.keystore_matches(store, key, [cert, ca.cert], "pw-123")
    assert not pki.keystore_matches(store, ec.generate_private_key(ec.SECP256R1()), [cert], "pw-123")
    with pytest.raises(pki.PkiError, match="does not belong"):
        pki.keystore_pem(ec.generate_private_key(ec.SECP256R1()), [cert], "pw")
    with pytest.raises(pki.PkiError, match="printable ASCII"):
        pki.keystore_pem(key, [cert], "with space")


def test_host_files_are_stable(tmp_path):
    ca_dir = str(tmp_path)
    first = pki.ensure_host(ca_dir, "kafka1", ["kafka1.example.com"], ["10.0.0.5"], now=NOW)
    assert first.changed and first.ca_created and first.reason == "issued: no certificate yet"
    host = tmp_path / "hosts" / "kafka1"
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in host.iterdir()}
    second = pki.ensure_host(ca_dir, "kafka1", ["kafka1.example.com"], ["10.0.0.5"], now=NOW)
    assert not second.changed and second.reason == "up to date (expires in 825 days)"
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in host.iterdir()} == before
    assert (second.fingerprint, second.not_after, second.key_password) == (
        first.fingerprint, first.not_after, first.key_password)
    assert mode(host / "keystore.pem") == 0o600 and mode(host / "key-password") == 0o600
    assert mode(host) == 0o700 and mode(tmp_path / "hosts") == 0o700
    assert (host / "key-password").read_text() == first.key_password + "\n"
    assert len(first.key_password) == 32
    assert first.names == ["kafka1.example.com", "10.0.0.5"]
    assert first.fingerprint.count(":") == 31


def test_key_password_change_rebuilds_only_the_keystore(tmp_path):
    ca_dir = str(tmp_path)
    first = pki.ensure_host(ca_dir, "kafka1", ["kafka1"], now=NOW)
    second = pki.ensure_host(ca_dir, "kafka1", ["kafka1"], key_password="Chosen-Password-1", now=NOW)
    assert second.changed and second.fingerprint == first.fingerprint
    assert second.reason == "up to date (expires in 825 days); updated key-password, keystore.pem"
    store = (tmp_path / "hosts" / "kafka1" / "keystore.pem").read_bytes()
    assert pki.read_keystore(store, "Chosen-Password-1")
    third = pki.ensure_host(ca_dir, "kafka1", ["kafka1"], key_password="Chosen-Password-1", now=NOW)
    assert not third.changed
    with pytest.raises(pki.PkiError, match="printable ASCII"):
        pki.ensure_host(ca_dir, "kafka1", ["kafka1"], key_password="pässword", now=NOW)
    (tmp_path / "hosts" / "kafka1" / "key-password").unlink()  # a lost password means a new key
    lost = pki.ensure_host(ca_dir, "kafka1", ["kafka1"], now=NOW)
    assert lost.changed and lost.reason == "issued: the existing keystore.pem cannot be read with the key password"
    assert lost.fingerprint != first.fingerprint and lost.key_password != "Chosen-Password-1"


def test_reissue_through_ensure_host(tmp_path):
    ca_dir = str(tmp_path)
    first = pki.ensure_host(ca_dir, "kafka1", ["kafka1", "old.example"], now=NOW)
    second = pki.ensure_host(ca_dir, "kafka1", ["kafka1"], ["10.0.0.5"], now=NOW)
    assert second.changed and second.reason == "issued: names changed: +10.0.0.5 -old.example"
    assert second.fingerprint != first.fingerprint and second.key_password == first.key_password
    later = NOW + dt.timedelta(days=800)
    third = pki.ensure_host(ca_dir, "kafka1", ["kafka1"], ["10.0.0.5"], now=later)
    assert third.changed and third.reason == "issued: expires in 25 days (threshold 30)"
    with pytest.raises(pki.PkiError, match="renew_before_days"):
        pki.ensure_host(ca_dir, "kafka1", ["kafka1"], valid_days=30, renew_before_days=30, now=NOW)
    with pytest.raises(pki.PkiError, match="cannot name a directory"):
        pki.ensure_host(ca_dir, "../evil", ["kafka1"], now=NOW)


def test_check_mode_writes_nothing(tmp_path):
    ca_dir = tmp_path / "pki"
    fresh = pki.ensure_host(str(ca_dir), "kafka1", ["kafka1"], check_mode=True, now=NOW)
    assert fresh.changed and fresh.reason.startswith("would create a new CA") and not ca_dir.exists()
    pki.ensure_host(str(ca_dir), "kafka1", ["kafka1"], now=NOW)
    snapshot = sorted((str(p), p.read_bytes()) for p in ca_dir.rglob("*") if p.is_file())
    same = pki.ensure_host(str(ca_dir), "kafka1", ["kafka1"], check_mode=True, now=NOW)
    assert not same.changed and same.key_password
    renamed = pki.ensure_host(str(ca_dir), "kafka1", ["kafka2"], check_mode=True, now=NOW)
    assert renamed.changed and renamed.reason == "would reissue: names changed: +kafka2 -kafka1"
    other_host = pki.ensure_host(str(ca_dir), "kafka9", ["kafka9"], check_mode=True, now=NOW)
    assert other_host.changed and other_host.reason == "would reissue: no certificate yet"
    password = pki.ensure_host(str(ca_dir), "kafka1", ["kafka1"], key_password="New-1", check_mode=True, now=NOW)
    assert password.changed and "would update key-password, keystore.pem" in password.reason
    assert sorted((str(p), p.read_bytes()) for p in ca_dir.rglob("*") if p.is_file()) == snapshot


def test_byo_through_ensure_host(tmp_path, company):
    root, inter, leaf = company
    byo = dict(ca_bundle=b"# company roots\n" + pem(root[1]), certificate=pem(leaf[1]),
               key=key_pem(leaf[0], "kp"), key_passphrase="kp", chain=pem(inter[1]))
    first = pki.ensure_host(str(tmp_path), "kafka1", ["kafka1.example.com"], ["10.0.0.5"], byo=byo, now=NOW)
    assert first.changed and not (tmp_path / "ca.key").exists() and first.ca_certificate is None
    host = tmp_path / "hosts" / "kafka1"
    assert (host / "truststore.pem").read_bytes() == pem(root[1])
    key, certs = pki.read_keystore((host / "keystore.pem").read_bytes(), first.key_password)
    assert certs == [leaf[1], inter[1]] and pki._pkcs8(key) == pki._pkcs8(leaf[0])
    assert first.names == ["kafka1.example.com", "10.0.0.5"]
    again = pki.ensure_host(str(tmp_path), "kafka1", ["kafka1.example.com"], ["10.0.0.5"], byo=byo, now=NOW)
    assert not again.changed and again.reason == "up to date"
    with pytest.raises(pki.BundleError) as failure:
        pki.ensure_host(str(tmp_path), "kafka1", ["kafka1.example.com", "kafka1.other"], ["10.0.0.5"],
                        byo=dict(byo, chain=None), now=NOW)
    assert len(failure.value.errors) == 2 and "does not cover kafka1.other" in str(failure.value)


def test_no_key_material_in_results_or_messages(tmp_path, company):
    root, inter, leaf = company
    result = pki.ensure_host(str(tmp_path), "kafka1", ["kafka1"], ca_passphrase="ca-secret", now=NOW)
    assert "key_password=" not in repr(result) and result.key_password not in repr(result)
    text = json.dumps({k: v for k, v in vars(result).items() if k != "key_password"})
    assert "PRIVATE" not in text and "ca-secret" not in text
    with pytest.raises(pki.BundleError) as failure:
        pki.ensure_host(str(tmp_path), "kafka2", ["kafka1.example.com"], byo=dict(
            ca_bundle=pem(root[1]), certificate=pem(leaf[1]), key=key_pem(leaf[0], "kp-secret"),
            key_passphrase="wrong-secret"), now=NOW)
    assert "secret" not in str(failure.value) and "PRIVATE" not in str(failure.value)


# --- the action plugin, run by ansible-playbook ------------------------------------------------

PLAYBOOK = """
- hosts: all
  gather_facts: false
  tasks:
    - name: Issue
      metal.kafka.kafka_certificate:
        ca_dir: "{{ ca_dir }}"
        dns_names: "{{ names | default([]) }}"
        ip_addresses: "{{ ips | default([]) }}"
        byo: "{{ byo | default(omit) }}"
      register: cert
      no_log: "{{ hide | default(true) }}"
    - name: Keep the result for the test
      ansible.builtin.copy:
        content: "{{ cert | to_json }}"
        dest: "{{ out }}"
      check_mode: false
"""


def run_playbook(tmp_path, *extra, check=False, **variables):
    book = tmp_path / "play.yml"
    book.write_text(PLAYBOOK)
    inventory = tmp_path / "hosts.ini"
    inventory.write_text(f"kafka1 ansible_connection=local ansible_python_interpreter={sys.executable}\n")
    out = tmp_path / "result.json"
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(REPO / ".collections"), ANSIBLE_NOCOLOR="1",
               ANSIBLE_RETRY_FILES_ENABLED="0")
    command = [str(Path(sys.executable).parent / "ansible-playbook"), "-i", str(inventory), str(book),
               "-e", json.dumps(dict(variables, out=str(out)))]
    if check:
        command.append("--check")
    done = subprocess.run(command + list(extra), cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    result = json.loads(out.read_text()) if done.returncode == 0 else None
    if out.exists():
        out.unlink()
    return done, result


def test_action_plugin_in_a_playbook(tmp_path, company):
    ca_dir = tmp_path / "pki"
    done, dry = run_playbook(tmp_path, check=True, ca_dir=str(ca_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert dry["changed"] and "would create a new CA" in dry["reason"] and not ca_dir.exists()

    done, first = run_playbook(tmp_path, ca_dir=str(ca_dir))
    assert done.returncode == 0, done.stdout + done.stderr
    assert first["changed"] and first["ca_created"]
    assert first["keystore"] == str(ca_dir / "hosts" / "kafka1" / "keystore.pem")
    assert first["truststore"] == str(ca_dir / "hosts" / "kafka1" / "truststore.pem")
    assert first["names"] == ["kafka1"]  # the inventory name when no name or address is given
    assert first["key_password"] == (ca_dir / "hosts" / "kafka1" / "key-password").read_text().strip()
    assert first["key_password"] not in done.stdout  # no_log keeps it out of the output
    store = Path(first["keystore"]).read_bytes()

    done, second = run_playbook(tmp_path, ca_dir=str(ca_dir))
    assert done.returncode == 0 and not second["changed"] and second["reason"].startswith("up to date")
    assert Path(first["keystore"]).read_bytes() == store

    root, inter, leaf = company
    for name, data in (("root.pem", pem(root[1])), ("leaf.pem", pem(leaf[1])), ("leaf.key", key_pem(leaf[0]))):
        (tmp_path / name).write_bytes(data)
    byo = dict(ca_bundle="root.pem", certificate="leaf.pem", key="leaf.key")  # relative to the playbook
    done, _ = run_playbook(tmp_path, ca_dir=str(tmp_path / "byo"), names=["kafka1.example.com"],
                           ips=["127.0.0.1"], byo=byo, hide=False)
    assert done.returncode != 0
    assert "the chain does not verify" in done.stdout and "does not cover 127.0.0.1" in done.stdout
    done, _ = run_playbook(tmp_path, ca_dir=str(tmp_path / "byo"), byo=dict(byo, key="missing.key"), hide=False)
    assert done.returncode != 0 and "byo.key: cannot read" in done.stdout
