// Copyright: kafka-metal contributors
// Apache License 2.0
//
// Loads a PEM keystore and truststore with Kafka's own DefaultSslEngineFactory (kafka-clients on
// the classpath), configured as a broker's properties would configure it, and runs a mutual-TLS
// handshake between a client engine (with hostname verification) and a server engine.
//
// usage: java -cp kafka-clients.jar:slf4j-api.jar:. KafkaSslCheck KEYSTORE TRUSTSTORE KEY_PASSWORD HOSTNAME

import java.util.HashMap;
import java.util.Map;
import javax.net.ssl.SSLEngine;
import org.apache.kafka.common.config.ConfigDef;
import org.apache.kafka.common.security.ssl.DefaultSslEngineFactory;

public class KafkaSslCheck {
    public static void main(String[] args) throws Exception {
        Map<String, Object> props = new HashMap<>();
        props.put("ssl.keystore.type", "PEM");
        props.put("ssl.keystore.location", args[0]);
        props.put("ssl.key.password", args[2]);
        props.put("ssl.truststore.type", "PEM");
        props.put("ssl.truststore.location", args[1]);
        props.put("ssl.endpoint.identification.algorithm", "https");
        Map<String, Object> configs = new HashMap<>(new ConfigDef().withClientSslSupport().parse(props));
        configs.put("ssl.client.auth", "required");

        DefaultSslEngineFactory serverFactory = new DefaultSslEngineFactory();
        serverFactory.configure(configs);
        DefaultSslEngineFactory clientFactory = new DefaultSslEngineFactory();
        clientFactory.configure(configs);
        SSLEngine server = serverFactory.createServerSslEngine(args[3], 9093);
        SSLEngine client = clientFactory.createClientSslEngine(args[3], 9093, "https");
        PemKeystoreCheck.handshake(client, server);
        PemKeystoreCheck.pbeAlgorithm = "(read by DefaultSslEngineFactory)";
        PemKeystoreCheck.report(client, server);
    }
}
