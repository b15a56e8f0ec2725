package dev.ferrogate.runner;

import java.io.IOException;
import java.lang.reflect.InvocationHandler;
import java.lang.reflect.Proxy;
import java.net.MalformedURLException;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ServiceConfigurationError;

/**
 * The runner process, as the gateway starts it:
 *
 * <pre>
 * APISIX_LISTEN_ADDRESS=unix:/tmp/runner.sock APISIX_CONF_EXPIRE_TIME=3600 \
 *     java -jar ferrogate-runner-all.jar [plugin.jar ...]
 * </pre>
 *
 * Plugins are found with {@link java.util.ServiceLoader} on the class path and in the jars given as
 * arguments. Exits with status 2 on a configuration error. SIGTERM and SIGINT close the socket,
 * remove its file and exit with status 0.
 */
public final class Main {
    private static final Object LOCK = new Object();
    private static Runner runner; // guarded by LOCK
    private static boolean stopping; // guarded by LOCK

    private Main() {
    }

    public static void main(String[] args) throws InterruptedException {
        if (System.getProperty("java.util.logging.SimpleFormatter.format") == null) {
            System.setProperty("java.util.logging.SimpleFormatter.format", "%1$tFT%1$tT.%1$tLZ %4$s [%3$s] %5$s%6$s%n");
        }
        // Installed before the socket exists, so that a signal at any time leaves no socket behind.
        Runtime.getRuntime().addShutdownHook(new Thread(Main::stop, "ferrogate-shutdown"));
        handleSignals();
        Runner started;
        try {
            String address = System.getenv("APISIX_LISTEN_ADDRESS");
            if (address == null || address.isEmpty()) {
                throw new IllegalArgumentException("APISIX_LISTEN_ADDRESS is not set (expected unix:/path/to/runner.sock)");
            }
            if (!address.startsWith("unix:")) {
                throw new IllegalArgumentException("APISIX_LISTEN_ADDRESS must start with unix: (got " + address + ")");
            }
            Duration expire = Duration.ofSeconds(3600);
            String ttl = System.getenv("APISIX_CONF_EXPIRE_TIME");
            if (ttl != null && !ttl.isBlank()) {
                try {
                    expire = Duration.ofSeconds(Long.parseLong(ttl.trim()));
                } catch (NumberFormatException e) {
                    throw new IllegalArgumentException("APISIX_CONF_EXPIRE_TIME is not a number of seconds: " + ttl);
                }
                if (expire.isNegative() || expire.isZero()) {
                    throw new IllegalArgumentException("APISIX_CONF_EXPIRE_TIME must be positive: " + ttl);
                }
            }
            Runner.Builder builder = Runner.builder()
                .listenAddress(address)
                .confExpire(expire)
                .discoverPlugins(loader(args));
            synchronized (LOCK) {
                if (stopping) {
                    return;
                }
                started = builder.start();
                runner = started;
            }
        } catch (IllegalArgumentException | IOException | ServiceConfigurationError e) {
            String cause = e.getCause() == null ? "" : " (" + e.getCause() + ")";
            System.err.println("ferrogate-runner: " + e.getMessage() + cause);
            System.exit(2);
            return;
        }
        System.err.println("ferrogate-runner: listening on " + started.socketPath() + ", plugins " + started.pluginNames());
        started.awaitTermination();
        // Every other thread is a daemon: returning ends the process with status 0.
    }

    private static void stop() {
        synchronized (LOCK) {
            stopping = true;
            if (runner != null) {
                runner.close();
            }
        }
    }

    /**
     * SIGTERM/SIGINT close the runner and let main return (status 0) instead of the JVM's default
     * of exiting with 128+signal. Uses sun.misc.Signal (module jdk.unsupported) when present,
     * reflectively so that the build needs no unsupported API; without it the shutdown hook still
     * removes the socket.
     */
    private static void handleSignals() {
        try {
            Class<?> signal = Class.forName("sun.misc.Signal");
            Class<?> handler = Class.forName("sun.misc.SignalHandler");
            Object h = Proxy.newProxyInstance(Main.class.getClassLoader(), new Class<?>[] {handler},
                (InvocationHandler) (proxy, method, margs) -> {
                    if (method.getName().equals("handle")) {
                        stop();
                    }
                    return null;
                });
            for (String name : new String[] {"TERM", "INT"}) {
                Object sig = signal.getConstructor(String.class).newInstance(name);
                signal.getMethod("handle", signal, handler).invoke(null, sig, h);
            }
        } catch (ReflectiveOperationException | RuntimeException | LinkageError e) {
            System.err.println("ferrogate-runner: no signal handling (" + e + "); relying on the shutdown hook");
        }
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
