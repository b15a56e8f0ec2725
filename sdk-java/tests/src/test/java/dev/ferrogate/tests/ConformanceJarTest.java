package dev.ferrogate.tests;

import static dev.ferrogate.tests.GatewayClient.errorCode;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferrogate.protocol.A6.Err.Code;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Assumptions;
import org.junit.jupiter.api.Test;

/**
 * The packaged conformance runner as the gateway starts it: {@code java -jar} with the two
 * {@code APISIX_*} variables. Needs the jar (built by {@code mvn package}/{@code verify}, which
 * test.sh runs); skipped under a bare {@code mvn test}.
 */
class ConformanceJarTest {

    private static Path jar() {
        Path jar = Path.of(System.getProperty("conformance.jar", "../conformance/target/ferrogate-conformance-runner.jar"));
        Assumptions.assumeTrue(Files.isRegularFile(jar), "no " + jar + " (run mvn verify)");
        return jar;
    }

    private static Process start(Path jar, Path sock, String expire) throws IOException {
        ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
            "-jar", jar.toString());
        pb.environment().put("APISIX_LISTEN_ADDRESS", "unix:" + sock);
        if (expire != null) {
            pb.environment().put("APISIX_CONF_EXPIRE_TIME", expire);
        }
        pb.redirectErrorStream(true).redirectOutput(sock.resolveSibling("runner.log").toFile());
        return pb.start();
    }

    private static void waitFor(Path sock, Process p) throws InterruptedException {
        long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
        while (!Files.exists(sock) && System.nanoTime() < end && p.isAlive()) {
            Thread.sleep(20);
        }
        assertTrue(Files.exists(sock), "runner created its socket");
    }

    @Test
    void servesTheConformancePluginsAndCleansUpOnSigterm() throws Exception {
        Path jar = jar();
        Path d = Files.createTempDirectory("fg-jar");
        Path sock = d.resolve("runner.sock");
        Files.writeString(sock, "a stale file from a killed runner");
        Process p = start(jar, sock, "3600");
        try {
            Thread.sleep(50);
            waitFor(sock, p);
            // the stale regular file was replaced by a socket; poll until it accepts
            GatewayClient c = null;
            long end = System.nanoTime() + TimeUnit.SECONDS.toNanos(20);
            while (c == null) {
                try {
                    c = new GatewayClient(sock);
                } catch (IOException e) {
                    if (System.nanoTime() > end) {
                        throw e;
                    }
                    Thread.sleep(20);
                }
            }
            try (GatewayClient client = c) {
                for (String name : List.of("conf-stop", "conf-rewrite", "conf-echo", "conf-sleep", "conf-fail", "conf-response")) {
                    assertNotEquals(0, client.prepare(name, "{}"), name);
                }
                long fail = client.prepare("conf-fail", "{}");
                client.sendRequest(new GatewayClient.Call(), fail);
                assertEquals(Code.SERVICE_UNAVAILABLE, errorCode(client.read()));
                long stop = client.prepare("conf-stop", "{\"status\":403}");
                client.sendRequest(new GatewayClient.Call(), stop);
                GatewayClient.Frame f = client.read();
                assertEquals(2, f.type());
            }
            p.destroy(); // SIGTERM
            assertTrue(p.waitFor(20, TimeUnit.SECONDS), "exits on SIGTERM");
            assertEquals(0, p.exitValue(), "a clean exit");
            assertFalse(Files.exists(sock), "socket removed on SIGTERM");

            Process q = start(jar, sock, null);
            try {
                waitFor(sock, q);
                Process kill = new ProcessBuilder("kill", "-INT", String.valueOf(q.pid())).start();
                assertEquals(0, kill.waitFor());
                assertTrue(q.waitFor(20, TimeUnit.SECONDS), "exits on SIGINT");
                assertEquals(0, q.exitValue());
                assertFalse(Files.exists(sock), "socket removed on SIGINT");
            } finally {
                q.destroyForcibly();
            }
        } finally {
            p.destroyForcibly();
            Files.deleteIfExists(sock);
            Files.deleteIfExists(d.resolve("runner.log"));
            Files.deleteIfExists(d);
        }
    }

    @Test
    void refusesABadEnvironment() throws Exception {
        Path jar = jar();
        Path d = Files.createTempDirectory("fg-env");
        try {
            String[][] cases = {
                {null, null, "APISIX_LISTEN_ADDRESS"},
                {d.resolve("no-prefix.sock").toString(), null, "APISIX_LISTEN_ADDRESS"},
                {"unix:" + d.resolve("s.sock"), "soon", "APISIX_CONF_EXPIRE_TIME"},
                {"unix:" + d.resolve("s.sock"), "0", "APISIX_CONF_EXPIRE_TIME"},
            };
            for (String[] c : cases) {
                ProcessBuilder pb = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                    "-jar", jar.toString());
                pb.environment().remove("APISIX_LISTEN_ADDRESS");
                pb.environment().remove("APISIX_CONF_EXPIRE_TIME");
                if (c[0] != null) {
                    pb.environment().put("APISIX_LISTEN_ADDRESS", c[0]);
                }
                if (c[1] != null) {
                    pb.environment().put("APISIX_CONF_EXPIRE_TIME", c[1]);
                }
                pb.redirectErrorStream(true);
                Process p = pb.start();
                String out = new String(p.getInputStream().readAllBytes());
                assertTrue(p.waitFor(20, TimeUnit.SECONDS));
                assertEquals(2, p.exitValue(), String.join(" ", java.util.Arrays.asList(c)));
                assertTrue(out.contains(c[2]), out);
            }
            assertFalse(Files.exists(d.resolve("s.sock")));
        } finally {
            Files.deleteIfExists(d);
        }
    }
}
