"""Java 17 reads the keystores and truststores that ``pki`` writes: proven with the real JDK.

``pki_java/PemKeystoreCheck.java`` repeats, with the JDK only, what Kafka's
``DefaultSslEngineFactory`` does with ``ssl.keystore.type=PEM``: ``EncryptedPrivateKeyInfo``,
``SecretKeyFactory.getInstance(getAlgName())``, ``PBEKeySpec(password)``, ``getKeySpec(cipher)``,
then a mutual-TLS handshake with hostname verification. ``pki_java/KafkaSslCheck.java`` does the
same through Kafka's own class, for every kafka-clients jar at hand (the local Maven repository,
or the archives that ``kafka-metal dist`` cached). Skipped when there is no ``javac``.
"""

import datetime as dt
import ipaddress
import os
import re
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest
from ansible_collections.metal.kafka.plugins.module_utils import pki
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

SOURCES = Path(__file__).resolve().parent / "pki_java"
NAMES = dict(dns_names=["kafka1.example.com", "localhost"], ip_addresses=["127.0.0.1"])


def _jdk_bin():
    """The bin directory of a JDK, Java 17 first (Kafka's baseline), or None."""
    for home in (os.environ.get("KAFKA_METAL_TEST_JAVA_HOME"), "/usr/lib/jvm/java-17-openjdk-amd64",
                 os.environ.get("JAVA_HOME")):
        if home and (Path(home) / "bin" / "javac").exists():
            return Path(home) / "bin"
    javac = shutil.which("javac")
    return Path(javac).resolve().parent if javac else None


JDK = _jdk_bin()
pytestmark = pytest.mark.skipif(JDK is None, reason="no JDK (javac) on this machine")


def java_major():
    done = subprocess.run([str(JDK / "java"), "-version"], capture_output=True, text=True)
    match = re.search(r'version "(\d+)', done.stderr)
    return int(match.group(1)) if match else 0


def _kafka_clients():
    """``{version: source}`` of kafka-clients jars at hand: ("jars", [clients, slf4j]) or ("tgz", archive)."""
    found = {}
    m2 = Path.home() / ".m2" / "repository"
    slf4j = sorted((m2 / "org" / "slf4j" / "slf4j-api").glob("*/slf4j-api-*.jar"))
    for jar in sorted((m2 / "org" / "apache" / "kafka" / "kafka-clients").glob("*/kafka-clients-*.jar")):
        if jar.name == f"kafka-clients-{jar.parent.name}.jar" and slf4j:
            found[jar.parent.name] = ("jars", [jar, slf4j[-1]])
    try:
        from kafka_metal.dist import default_cache_dir

        cache = default_cache_dir() / "dist"
    except Exception:  # noqa: BLE001 - an optional source of jars
        cache = None
    for archive in sorted(cache.glob("kafka_*-*.tgz")) if cache and cache.is_dir() else ():
        found.setdefault(archive.name[:-len(".tgz")].split("-", 1)[1], ("tgz", archive))
    return found


KAFKA = _kafka_clients()


def run_java(classpath, main, *args):
    return subprocess.run([str(JDK / "java"), "-cp", os.pathsep.join(map(str, classpath)), main, *map(str, args)],
                          capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def classes(tmp_path_factory):
    out = tmp_path_factory.mktemp("pki-java")
    subprocess.run([str(JDK / "javac"), "-d", str(out), str(SOURCES / "PemKeystoreCheck.java")], check=True)
    return out


def host_files(ca_dir, key_type="ec"):
    result = pki.ensure_host(str(ca_dir), "kafka1", key_type=key_type, **NAMES)
    return result.keystore, result.truststore, result.key_password


@pytest.mark.parametrize("key_type", ["ec", "rsa"])
def test_java_reads_the_keystore_and_completes_a_mutual_tls_handshake(tmp_path, classes, key_type):
    keystore, truststore, password = host_files(tmp_path, key_type)
    for name in ("kafka1.example.com", "localhost", "127.0.0.1"):
        done = run_java([classes], "PemKeystoreCheck", keystore, truststore, password, name)
        assert done.returncode == 0, done.stderr
        assert done.stdout.startswith(f"OK alg=PBEWithSHA1AndDESede key={key_type.upper()} protocol=TLSv1.")
        assert "peer=CN=kafka1" in done.stdout  # the server saw the client's certificate


def test_java_refuses_a_name_the_certificate_does_not_carry(tmp_path, classes):
    keystore, truststore, password = host_files(tmp_path)
    done = run_java([classes], "PemKeystoreCheck", keystore, truststore, password, "kafka2.example.com")
    assert done.returncode != 0 and "No subject alternative DNS name matching kafka2.example.com" in done.stderr
    done = run_java([classes], "PemKeystoreCheck", keystore, truststore, password + "x", "localhost")
    assert done.returncode != 0


def test_java_reads_a_bring_your_own_keystore_with_an_intermediate(tmp_path, classes):
    now = pki.utcnow()

    def cert(subject, issuer_name, issuer_key, public_key, ca, pathlen=None, sans=None):
        builder = (x509.CertificateBuilder()
                   .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
                   .issuer_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, issuer_name)]))
                   .public_key(public_key).serial_number(x509.random_serial_number())
                   .not_valid_before(now - dt.timedelta(days=1)).not_valid_after(now + dt.timedelta(days=90))
                   .add_extension(x509.BasicConstraints(ca=ca, path_length=pathlen), critical=True))
        if sans:
            builder = builder.add_extension(x509.SubjectAlternativeName(sans), critical=False).add_extension(
                x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]), False)
        return builder.sign(issuer_key, hashes.SHA256())

    root_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    inter_key = ec.generate_private_key(ec.SECP384R1())
    leaf_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    root = cert("Company Root", "Company Root", root_key, root_key.public_key(), True, 1)
    inter = cert("Company Issuing CA", "Company Root", root_key, inter_key.public_key(), True, 0)
    leaf = cert("kafka1", "Company Issuing CA", inter_key, leaf_key.public_key(), False,
                sans=[x509.DNSName("*.example.com"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
    byo = dict(ca_bundle=root.public_bytes(serialization.Encoding.PEM),
               certificate=leaf.public_bytes(serialization.Encoding.PEM),
               chain=inter.public_bytes(serialization.Encoding.PEM),
               key=leaf_key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL,
                                          serialization.BestAvailableEncryption(b"company")),
               key_passphrase="company")
    result = pki.ensure_host(str(tmp_path), "kafka1", ["kafka1.example.com"], ["127.0.0.1"], byo=byo)
    done = run_java([classes], "PemKeystoreCheck", result.keystore, result.truststore, result.key_password,
                    "kafka1.example.com")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK alg=PBEWithSHA1AndDESede key=RSA")


@pytest.mark.skipif(JDK is None or java_major() != 17, reason="the PBES2 limitation is Java 17's")
def test_java_17_cannot_read_pbes2_which_is_why_the_keystore_does_not_use_it(tmp_path, classes):
    keystore, truststore, password = host_files(tmp_path)
    key, certs = pki.read_keystore(Path(keystore).read_bytes(), password)
    pbes2 = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                              serialization.BestAvailableEncryption(password.encode()))
    (tmp_path / "pbes2.pem").write_bytes(pbes2 + b"".join(pki.cert_pem(c) for c in certs))
    done = run_java([classes], "PemKeystoreCheck", tmp_path / "pbes2.pem", truststore, password, "localhost")
    assert done.returncode != 0 and "PBES2 SecretKeyFactory not available" in done.stderr


def _kafka_classpath(source, where):
    kind, value = source
    if kind == "jars":
        return value
    wanted = re.compile(r"/libs/(kafka-clients-[^/]+\.jar|slf4j-api-[^/]+\.jar)$")
    jars = []
    with tarfile.open(value, "r:gz") as archive:
        for member in archive:
            match = wanted.search(member.name)
            if match and member.isfile():
                target = where / match.group(1)
                target.write_bytes(archive.extractfile(member).read())
                jars.append(target)
                if len(jars) == 2:
                    break
    return jars


@pytest.mark.parametrize("version", sorted(KAFKA) or [None], ids=lambda v: f"kafka-{v}" if v else "no-kafka")
def test_kafkas_own_ssl_engine_factory_reads_the_keystore(tmp_path, classes, version):
    if version is None:
        pytest.skip("no kafka-clients jar in ~/.m2 or in the kafka-metal dist cache")
    jars = _kafka_classpath(KAFKA[version], tmp_path)
    assert any("kafka-clients" in j.name for j in jars), jars
    out = tmp_path / "classes"
    compiled = subprocess.run([str(JDK / "javac"), "-d", str(out), "-cp", os.pathsep.join(map(str, [*jars, classes])),
                               str(SOURCES / "KafkaSslCheck.java")], capture_output=True, text=True)
    assert compiled.returncode == 0, compiled.stderr
    keystore, truststore, password = host_files(tmp_path / "pki")
    done = run_java([*jars, classes, out], "KafkaSslCheck", keystore, truststore, password, "kafka1.example.com")
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith("OK alg=(read by DefaultSslEngineFactory) key=EC protocol=TLSv1.3 peer=CN=kafka1")
