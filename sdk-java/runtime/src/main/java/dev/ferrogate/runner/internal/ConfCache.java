package dev.ferrogate.runner.internal;

import dev.ferrogate.plugin.Plugin;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * Prepared confs by token, each living {@code ttl} after its prepare (APISIX_CONF_EXPIRE_TIME).
 * Lock-free for lookups; expired entries are dropped when looked up and by {@link #sweep()}.
 */
public final class ConfCache {
    /** One plugin of a chain with its parsed conf. */
    record Link(Plugin<Object> plugin, Object conf) {
    }

    /** A prepared chain. */
    record Entry(Link[] chain, long expiresAt) {
    }

    private final ConcurrentHashMap<Long, Entry> entries = new ConcurrentHashMap<>();
    private final AtomicLong next = new AtomicLong();
    private final long ttlNanos;
    private final LongSupplier clock;

    public ConfCache(long ttlNanos, LongSupplier clock) {
        this.ttlNanos = ttlNanos;
        this.clock = clock;
    }

    /** Stores a chain and returns its token: 1, 2, ... (u32, never 0). */
    long put(Link[] chain) {
        long token;
        do {
            token = next.incrementAndGet() & 0xFFFF_FFFFL;
        } while (token == 0 || entries.containsKey(token));
        entries.put(token, new Entry(chain, clock.getAsLong() + ttlNanos));
        return token;
    }

    /** The live chain of a token, or null when unknown or expired. */
    Link[] get(long token) {
        Entry e = entries.get(token);
        if (e == null) {
            return null;
        }
        if (clock.getAsLong() - e.expiresAt >= 0) {
            entries.remove(token, e);
            return null;
        }
        return e.chain;
    }

    /** Drops expired entries. */
    public void sweep() {
        long now = clock.getAsLong();
        entries.values().removeIf(e -> now - e.expiresAt >= 0);
    }

    public int size() {
        return entries.size();
    }
}
