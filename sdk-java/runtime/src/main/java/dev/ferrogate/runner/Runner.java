package dev.ferrogate.runner;

import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.runner.internal.ConfCache;
import dev.ferrogate.runner.internal.Connection;
import dev.ferrogate.runner.internal.Registry;
import java.io.IOException;
import java.lang.System.Logger;
import java.lang.System.Logger.Level;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.channels.ClosedChannelException;
import java.nio.channels.ServerSocketChannel;
import java.nio.channels.SocketChannel;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.attribute.PosixFilePermissions;
import java.time.Duration;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.ServiceLoader;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.ScheduledExecutorService;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicInteger;

/**
 * A running plugin runner: listens on a Unix domain socket and serves each gateway connection on
 * its own thread (calls on one connection are strictly sequential, so a thread per connection
 * keeps the order for free; the gateway pools and reuses connections).
 *
 * <p>The socket file is removed before binding (a stale one from a killed runner) and on
 * {@link #close()}.
 */
public final class Runner implements AutoCloseable {
    private static final Logger LOG = System.getLogger("dev.ferrogate.runner");

    private final Path socket;
    private final ServerSocketChannel server;
    private final Registry registry;
    private final ConfCache confs;
    private final long callTimeoutNanos;
    private final ExecutorService connections;
    private final ScheduledExecutorService sweeper;
    private final Thread acceptor;
    private final CountDownLatch stopped = new CountDownLatch(1);
    private volatile boolean closing;

    private Runner(Builder b) throws IOException {
        this.socket = b.socket.toAbsolutePath();
        this.registry = new Registry(b.plugins);
        this.confs = new ConfCache(b.confExpire.toNanos(), System::nanoTime);
        this.callTimeoutNanos = b.callTimeout.toNanos();
        Files.deleteIfExists(socket);
        server = ServerSocketChannel.open(StandardProtocolFamily.UNIX);
        try {
            server.bind(UnixDomainSocketAddress.of(socket));
        } catch (IOException e) {
            server.close();
            throw e;
        }
        try {
            // Like APISIX's runners: the gateway's workers may run as another user.
            Files.setPosixFilePermissions(socket, PosixFilePermissions.fromString("rwxrw-rw-"));
        } catch (IOException | UnsupportedOperationException e) {
            LOG.log(Level.DEBUG, "could not chmod the socket: {0}", e.toString());
        }
        AtomicInteger n = new AtomicInteger();
        connections = Executors.newCachedThreadPool(r -> {
            Thread t = new Thread(r, "ferrogate-conn-" + n.incrementAndGet());
            t.setDaemon(true);
            return t;
        });
        sweeper = Executors.newSingleThreadScheduledExecutor(r -> {
            Thread t = new Thread(r, "ferrogate-conf-sweeper");
            t.setDaemon(true);
            return t;
        });
        long every = Math.max(1, Math.min(60, b.confExpire.toSeconds() / 2));
        sweeper.scheduleWithFixedDelay(confs::sweep, every, every, TimeUnit.SECONDS);
        acceptor = new Thread(this::acceptLoop, "ferrogate-accept");
        acceptor.setDaemon(true);
        acceptor.start();
    }

    /** A builder; the socket path is required. */
    public static Builder builder() {
        return new Builder();
    }

    /** The socket file this runner listens on. */
    public Path socketPath() {
        return socket;
    }

    /** The names of the plugins served, sorted. */
    public List<String> pluginNames() {
        return registry.names();
    }

    private void acceptLoop() {
        try {
            while (true) {
                SocketChannel ch = server.accept();
                connections.execute(new Connection(ch, registry, confs, callTimeoutNanos));
            }
        } catch (ClosedChannelException e) {
            // close() was called
        } catch (IOException e) {
            if (!closing) {
                LOG.log(Level.ERROR, "accept failed; runner stops", e);
            }
        } finally {
            close();
        }
    }

    /** Blocks until the runner is closed. */
    public void awaitTermination() throws InterruptedException {
        stopped.await();
    }

    /** Stops accepting, closes the socket and removes its file. Connections in progress are abandoned. */
    @Override
    public synchronized void close() {
        if (closing) {
            return;
        }
        closing = true;
        try {
            server.close();
        } catch (IOException e) {
            LOG.log(Level.DEBUG, "closing the socket: {0}", e.toString());
        }
        try {
            Files.deleteIfExists(socket);
        } catch (IOException e) {
            LOG.log(Level.WARNING, "could not remove {0}: {1}", socket, e.toString());
        }
        connections.shutdownNow();
        sweeper.shutdownNow();
        stopped.countDown();
    }

    /** Configures and starts a {@link Runner}. */
    public static final class Builder {
        private Path socket;
        private Duration confExpire = Duration.ofSeconds(3600);
        private Duration callTimeout = Duration.ofSeconds(60);
        private final List<Plugin<?>> plugins = new ArrayList<>();

        private Builder() {
        }

        /** The socket file to create. */
        public Builder socket(Path path) {
            this.socket = Objects.requireNonNull(path);
            return this;
        }

        /**
         * The socket from an {@code APISIX_LISTEN_ADDRESS} value, {@code unix:/abs/path.sock}.
         *
         * @throws IllegalArgumentException without the {@code unix:} prefix or a path
         */
        public Builder listenAddress(String address) {
            Objects.requireNonNull(address, "address");
            if (!address.startsWith("unix:") || address.length() == 5) {
                throw new IllegalArgumentException("expected unix:/path/to/socket, got \"" + address + "\"");
            }
            return socket(Path.of(address.substring(5)));
        }

        /** How long a prepared conf lives (APISIX_CONF_EXPIRE_TIME); default one hour. */
        public Builder confExpire(Duration d) {
            if (d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException("conf expiry must be positive");
            }
            this.confExpire = d;
            return this;
        }

        /** How long a call waits for an asynchronous plugin before answering an error; default 60 s. */
        public Builder callTimeout(Duration d) {
            if (d.isNegative() || d.isZero()) {
                throw new IllegalArgumentException("call timeout must be positive");
            }
            this.callTimeout = d;
            return this;
        }

        /** Serves this plugin. */
        public Builder plugin(Plugin<?> plugin) {
            plugins.add(Objects.requireNonNull(plugin));
            return this;
        }

        /** Serves every plugin {@link ServiceLoader} finds through this class loader. */
        @SuppressWarnings("rawtypes")
        public Builder discoverPlugins(ClassLoader loader) {
            for (Plugin p : ServiceLoader.load(Plugin.class, loader)) {
                plugins.add(p);
            }
            return this;
        }

        /**
         * Binds the socket and starts serving.
         *
         * @throws IOException when the socket cannot be created
         * @throws IllegalArgumentException for duplicate plugin names or a missing socket path
         */
        public Runner start() throws IOException {
            if (socket == null) {
                throw new IllegalArgumentException("no socket path");
            }
            return new Runner(this);
        }
    }
}
