package dev.ferrogate.runner;

import java.io.IOException;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;

/**
 * The runner process, as the gateway starts it:
 *
 * <pre>
 * APISIX_LISTEN_ADDRESS=unix:/tmp/runner.sock APISIX_CONF_EXPIRE_TIME=3600 \
 *     java -jar ferrogate-runner-all.jar [plugin.jar ...]
 * </pre>
 *
 * Plugins are found with {@link java.util.ServiceLoader} on the class path and in the jars given as
 * arguments. Exits with status 2 on a configuration error; SIGTERM/SIGINT remove the socket file.
 */
public final class Main {
    private Main() {
    }

    public static void main(String[] args) throws InterruptedException {
        if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
            System.setProperty("java.util.logging.SimpleFormatter.format", "%1$tFT%1$tT.%1$tLZ %4$s [%3$s] %5$s%6$s%n");
        }
        Runner runner;
        try {
            String address = System.getenv("APISIX_LISTEN_ADDRESS");
            if (address == null || address.isEmpty()) {
                throw new IllegalArgumentException("APISIX_LISTEN_ADDRESS is not set (expected unix:/path/to/runner.sock)");
            }
            Duration expire = Duration.ofSeconds(3600);
            String ttl = System.getenv("APISIX_CONF_EXPIRE_TIME");
            if (ttl != null && !ttl.isBlank()) {
                try {
                    expire = Duration.ofSeconds(Long.parseLong(ttl.trim()));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("APISIX_CONF_EXPIRE_TIME is not a number of seconds: " + ttl);
                }
            }
            runner = Runner.builder()
                .listenAddress(address)
                .confExpire(expire)
                .discoverPlugins(loader(args))
                .start();
        } catch (IllegalArgumentException | IOException | java.util.ServiceConfigurationError e) {
            String cause = e.getCause() == null ? "" : " (" + e.getCause() + ")";
            System.err.println("ferrogate-runner: " + e.getMessage() + cause);
            System.exit(2);
            return;
        }
        Runtime.getRuntime().addShutdownHook(new Thread(runner::close, "ferrogate-shutdown"));
        System.err.println("ferrogate-runner: listening on " + runner.socketPath() + ", plugins " + runner.pluginNames());
        runner.awaitTermination();
    }

    private static ClassLoader loader(String[] jars) throws MalformedURLException {
        ClassLoader parent = Thread.currentThread().getContextClassLoader();
        if (jars.length == 0) {
            return parent;
        }
        URL[] urls = new URL[jars.length];
        for (int i = 0; i < jars.length; i++) {
            Path p = Path.of(jars[i]);
            if (!Files.isReadable(p)) {
                throw new IllegalArgumentException("cannot read plugin jar " + p);
            }
            urls[i] = p.toUri().toURL();
        }
        return new URLClassLoader(urls, parent);
    }
}
