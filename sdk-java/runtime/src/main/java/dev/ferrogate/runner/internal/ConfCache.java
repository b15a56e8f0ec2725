package dev.ferrogate.runner.internal;

import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.Plugin;
import java.util.List;
import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.atomic.AtomicLong;
import java.util.function.LongSupplier;

/**
 * Prepared confs by token, each living {@code ttl} after its last prepare
 * (APISIX_CONF_EXPIRE_TIME). Lock-free for lookups; expired entries are dropped when looked up and
 * by {@link #sweep()}.
 *
 * <p>The prepare's {@code key} is an idempotency key: preparing the same key with the same conf
 * again returns the same token and extends its life (the gateway re-prepares a conf still in use
 * before it expires). A different conf under a known key gets a new token.
 */
public final class ConfCache {
    /** One plugin of a chain with its parsed conf. */
    record Link(Plugin<Object> plugin, Object conf) {
    }

    /** A prepared chain; {@code expiresAt} is extended by a repeated prepare. */
    static final class Entry {
        final Link[] chain;
        final String key;
        final List<Field> source;
        volatile long expiresAt;

        Entry(Link[] chain, String key, List<Field> source, long expiresAt) {
            this.chain = chain;
            this.key = key;
            this.source = source;
            this.expiresAt = expiresAt;
        }
    }

    private final ConcurrentHashMap<Long, Entry> entries = new ConcurrentHashMap<>();
    private final ConcurrentHashMap<String, Long> byKey = new ConcurrentHashMap<>();
    private final AtomicLong next = new AtomicLong();
    private final long ttlNanos;
    private final LongSupplier clock;

    public ConfCache(long ttlNanos, LongSupplier clock) {
        this.ttlNanos = ttlNanos;
        this.clock = clock;
    }

    /**
     * The live token already prepared for this key and conf (its life extended), or 0. An empty
     * key never matches.
     */
    long reuse(String key, List<Field> source) {
        if (key == null || key.isEmpty()) {
            return 0;
        }
        Long token = byKey.get(key);
        if (token == null) {
            return 0;
        }
        Entry e = entries.get(token);
        long now = clock.getAsLong();
        if (e == null || now - e.expiresAt >= 0 || !e.source.equals(source)) {
            return 0;
        }
        e.expiresAt = now + ttlNanos;
        return token;
    }

    /** Stores a chain and returns its token: 1, 2, ... (u32, never 0). */
    long put(String key, List<Field> source, Link[] chain) {
        long token;
        do {
            token = next.incrementAndGet() & 0xFFFF_FFFFL;
        } while (token == 0 || entries.containsKey(token));
        String k = key == null || key.isEmpty() ? null : key;
        entries.put(token, new Entry(chain, k, source, clock.getAsLong() + ttlNanos));
        if (k != null) {
            byKey.put(k, token);
        }
        return token;
    }

    /** The live chain of a token, or null when unknown or expired. */
    Link[] get(long token) {
        Entry e = entries.get(token);
        if (e == null) {
            return null;
        }
        if (clock.getAsLong() - e.expiresAt >= 0) {
            drop(token, e);
            return null;
        }
        return e.chain;
    }

    private void drop(long token, Entry e) {
        if (entries.remove(token, e) && e.key != null) {
            byKey.remove(e.key, token);
        }
    }

    /** Drops expired entries. */
    public void sweep() {
        long now = clock.getAsLong();
        entries.forEach((token, e) -> {
            if (now - e.expiresAt >= 0) {
                drop(token, e);
            }
        });
    }

    public int size() {
        return entries.size();
    }
}
