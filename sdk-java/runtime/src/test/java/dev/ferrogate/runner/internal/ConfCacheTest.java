package dev.ferrogate.runner.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import dev.ferrogate.plugin.Plugin;
import java.util.List;
import java.util.concurrent.atomic.AtomicLong;
import org.junit.jupiter.api.Test;

class ConfCacheTest {
    @Test
    void tokensStartAtOneAndExpire() {
        AtomicLong now = new AtomicLong(1_000);
        ConfCache c = new ConfCache(100, now::get);
        ConfCache.Link[] chain = new ConfCache.Link[0];
        assertEquals(1, c.put("", List.of(), chain));
        assertEquals(2, c.put(null, List.of(), chain));
        assertNotNull(c.get(1));
        assertNull(c.get(3), "unknown");
        now.addAndGet(99);
        assertNotNull(c.get(2));
        now.addAndGet(1);
        assertNull(c.get(2), "expired");
        assertEquals(1, c.size(), "dropped when looked up");
        c.sweep();
        assertEquals(0, c.size());
    }

    @Test
    void theSameKeyAndConfGetTheSameTokenAndALongerLife() {
        AtomicLong now = new AtomicLong(0);
        ConfCache c = new ConfCache(100, now::get);
        ConfCache.Link[] chain = new ConfCache.Link[0];
        List<dev.ferrogate.plugin.Field> conf = List.of(dev.ferrogate.plugin.Field.of("p", "{}"));
        assertEquals(0, c.reuse("k", conf));
        long t = c.put("k", conf, chain);
        now.set(90);
        assertEquals(t, c.reuse("k", conf), "same key, same conf");
        assertEquals(0, c.reuse("k", List.of(dev.ferrogate.plugin.Field.of("p", "{\"x\":1}"))), "same key, new conf");
        assertEquals(0, c.reuse("", conf), "no key, no reuse");
        now.set(150);
        assertNotNull(c.get(t), "the repeated prepare extended its life to 190");
        now.set(190);
        assertNull(c.get(t));
        assertEquals(0, c.reuse("k", conf), "expired: a new token is needed");
    }

    record Named(String name) implements Plugin<String> {
        @Override
        public String parseConf(String conf) {
            return conf;
        }
    }

    @Test
    void registryRefusesDuplicateAndEmptyNames() {
        assertThrows(IllegalArgumentException.class, () -> new Registry(List.of(new Named("a"), new Named("a"))));
        assertThrows(IllegalArgumentException.class, () -> new Registry(List.of(new Named(""))));
        assertEquals(List.of("a", "b"), new Registry(List.of(new Named("b"), new Named("a"))).names());
    }
}
