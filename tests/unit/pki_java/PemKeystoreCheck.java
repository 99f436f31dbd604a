// Copyright: kafka-metal contributors
// Apache License 2.0
//
// Loads a PEM keystore and truststore the way Kafka's DefaultSslEngineFactory (PemStore) does,
// using only the JDK, then runs a mutual-TLS handshake between two in-memory SSLEngines with
// HTTPS endpoint identification (Kafka's default ssl.endpoint.identification.algorithm).
//
// usage: java PemKeystoreCheck KEYSTORE TRUSTSTORE KEY_PASSWORD HOSTNAME
// prints "OK alg=<PBE algorithm> key=<key algorithm> protocol=<TLS version> peer=<client subject>"

import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.security.KeyFactory;
import java.security.KeyStore;
import java.security.PrivateKey;
import java.security.cert.Certificate;
import java.security.cert.CertificateFactory;
import java.security.cert.X509Certificate;
import java.security.spec.InvalidKeySpecException;
import java.security.spec.PKCS8EncodedKeySpec;
import java.util.ArrayList;
import java.util.Base64;
import java.util.List;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import javax.crypto.Cipher;
import javax.crypto.EncryptedPrivateKeyInfo;
import javax.crypto.SecretKey;
import javax.crypto.SecretKeyFactory;
import javax.crypto.spec.PBEKeySpec;
import javax.net.ssl.KeyManagerFactory;
import javax.net.ssl.SSLContext;
import javax.net.ssl.SSLEngine;
import javax.net.ssl.SSLEngineResult;
import javax.net.ssl.SSLParameters;
import javax.net.ssl.TrustManagerFactory;

public class PemKeystoreCheck {
    static String pbeAlgorithm = "?";

    // The same entry pattern as Kafka's PemParser: BEGIN line, optional headers, base64, END line.
    static List<byte[]> pemEntries(String pem, String name) {
        String edge = "-+%s\\s*.*%s[^-]*-+\\s+";
        String label = name.replace(" ", "\\s+");
        Pattern pattern = Pattern.compile(String.format(edge, "BEGIN", label)
                + "(?:\\s*[^\\r\\n]*:[^\\r\\n]*[\\r\\n]+)*" + "([a-zA-Z0-9/+=\\s]*)"
                + String.format(edge, "END", label));
        Matcher matcher = pattern.matcher(pem + "\n");
        List<byte[]> entries = new ArrayList<>();
        while (matcher.find()) {
            entries.add(Base64.getDecoder().decode(matcher.group(1).replaceAll("\\s", "")));
        }
        return entries;
    }

    // Kafka's PemStore.privateKey(): EncryptedPrivateKeyInfo, SecretKeyFactory and Cipher by getAlgName().
    static PrivateKey privateKey(String pem, char[] password) throws Exception {
        List<byte[]> keys = pemEntries(pem, "PRIVATE KEY");
        if (keys.size() != 1) throw new IllegalStateException("expected one private key, found " + keys.size());
        EncryptedPrivateKeyInfo info = new EncryptedPrivateKeyInfo(keys.get(0));
        pbeAlgorithm = info.getAlgName();
        SecretKeyFactory factory = SecretKeyFactory.getInstance(pbeAlgorithm);
        SecretKey pbeKey = factory.generateSecret(new PBEKeySpec(password));
        Cipher cipher = Cipher.getInstance(pbeAlgorithm);
        cipher.init(Cipher.DECRYPT_MODE, pbeKey, info.getAlgParameters());
        PKCS8EncodedKeySpec spec = info.getKeySpec(cipher);
        InvalidKeySpecException first = null;
        for (String algorithm : new String[] {"RSA", "DSA", "EC"}) {
            try {
                return KeyFactory.getInstance(algorithm).generatePrivate(spec);
            } catch (InvalidKeySpecException e) {
                if (first == null) first = e;
            }
        }
        throw first;
    }

    static Certificate[] certs(String pem) throws Exception {
        List<byte[]> entries = pemEntries(pem, "CERTIFICATE");
        if (entries.isEmpty()) throw new IllegalStateException("no certificate");
        Certificate[] out = new Certificate[entries.size()];
        CertificateFactory factory = CertificateFactory.getInstance("X.509");
        for (int i = 0; i < out.length; i++) {
            out[i] = factory.generateCertificate(new java.io.ByteArrayInputStream(entries.get(i)));
        }
        return out;
    }

    static KeyStore keyStore(String pem, char[] password) throws Exception {
        KeyStore ks = KeyStore.getInstance("PKCS12");
        ks.load(null, null);
        ks.setKeyEntry("kafka", privateKey(pem, password), password, certs(pem));
        return ks;
    }

    static KeyStore trustStore(String pem) throws Exception {
        KeyStore ts = KeyStore.getInstance("PKCS12");
        ts.load(null, null);
        Certificate[] all = certs(pem);
        for (int i = 0; i < all.length; i++) ts.setCertificateEntry("kafka" + i, all[i]);
        return ts;
    }

    static final ByteBuffer EMPTY = ByteBuffer.allocate(0);

    // Moves records between two engines until both finish the handshake, then exchanges data.
    static void handshake(SSLEngine client, SSLEngine server) throws Exception {
        int size = Math.max(client.getSession().getPacketBufferSize(), server.getSession().getPacketBufferSize());
        ByteBuffer toServer = ByteBuffer.allocate(size * 4), toClient = ByteBuffer.allocate(size * 4);
        ByteBuffer clientApp = ByteBuffer.allocate(size * 4), serverApp = ByteBuffer.allocate(size * 4);
        client.beginHandshake();
        server.beginHandshake();
        for (int i = 0; i < 1000; i++) {
            boolean progress = step(client, toServer, toClient, clientApp) | step(server, toClient, toServer, serverApp);
            if (done(client) && done(server)) break;
            if (!progress) throw new IllegalStateException("handshake stalled: client " + client.getHandshakeStatus()
                    + ", server " + server.getHandshakeStatus());
        }
        if (!done(client) || !done(server)) throw new IllegalStateException("handshake did not finish");
        client.wrap(ByteBuffer.wrap("ping".getBytes(StandardCharsets.US_ASCII)), toServer);
        receive(server, toServer, serverApp, "ping");
        server.wrap(ByteBuffer.wrap("pong".getBytes(StandardCharsets.US_ASCII)), toClient);
        receive(client, toClient, clientApp, "pong");
    }

    static boolean done(SSLEngine e) {
        SSLEngineResult.HandshakeStatus s = e.getHandshakeStatus();
        return s == SSLEngineResult.HandshakeStatus.NOT_HANDSHAKING || s == SSLEngineResult.HandshakeStatus.FINISHED;
    }

    static boolean step(SSLEngine e, ByteBuffer out, ByteBuffer in, ByteBuffer app) throws Exception {
        switch (e.getHandshakeStatus()) {
            case NEED_WRAP:
                return e.wrap(EMPTY, out).bytesProduced() > 0 || !done(e);
            case NEED_UNWRAP:
            case NEED_UNWRAP_AGAIN:
                in.flip();
                SSLEngineResult r = e.unwrap(in, app);
                in.compact();
                return r.bytesConsumed() > 0 || r.getHandshakeStatus() != SSLEngineResult.HandshakeStatus.NEED_UNWRAP;
            case NEED_TASK:
                Runnable task;
                while ((task = e.getDelegatedTask()) != null) task.run();
                return true;
            default:
                return false;
        }
    }

    static void receive(SSLEngine e, ByteBuffer in, ByteBuffer app, String expected) throws Exception {
        for (int i = 0; i < 10 && app.position() < expected.length(); i++) {
            in.flip();
            e.unwrap(in, app);
            in.compact();
            Runnable task;
            while ((task = e.getDelegatedTask()) != null) task.run();
        }
        app.flip();
        byte[] got = new byte[app.remaining()];
        app.get(got);
        app.clear();
        String text = new String(got, StandardCharsets.US_ASCII);
        if (!text.equals(expected)) throw new IllegalStateException("expected " + expected + ", got " + text);
    }

    static void report(SSLEngine client, SSLEngine server) throws Exception {
        X509Certificate peer = (X509Certificate) server.getSession().getPeerCertificates()[0];
        System.out.println("OK alg=" + pbeAlgorithm + " key=" + peer.getPublicKey().getAlgorithm()
                + " protocol=" + client.getSession().getProtocol() + " peer=" + peer.getSubjectX500Principal());
    }

    public static void main(String[] args) throws Exception {
        String keystorePem = new String(Files.readAllBytes(Paths.get(args[0])), StandardCharsets.US_ASCII);
        String truststorePem = new String(Files.readAllBytes(Paths.get(args[1])), StandardCharsets.US_ASCII);
        char[] password = args[2].toCharArray();
        String host = args[3];

        KeyManagerFactory kmf = KeyManagerFactory.getInstance(KeyManagerFactory.getDefaultAlgorithm());
        kmf.init(keyStore(keystorePem, password), password);
        TrustManagerFactory tmf = TrustManagerFactory.getInstance(TrustManagerFactory.getDefaultAlgorithm());
        tmf.init(trustStore(truststorePem));
        SSLContext context = SSLContext.getInstance("TLS");
        context.init(kmf.getKeyManagers(), tmf.getTrustManagers(), null);

        SSLEngine server = context.createSSLEngine(host, 9093);
        server.setUseClientMode(false);
        server.setNeedClientAuth(true);
        SSLEngine client = context.createSSLEngine(host, 9093);
        client.setUseClientMode(true);
        SSLParameters params = client.getSSLParameters();
        params.setEndpointIdentificationAlgorithm("HTTPS");
        client.setSSLParameters(params);
        handshake(client, server);
        report(client, server);
    }
}
