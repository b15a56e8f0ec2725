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
        assertEquals(1, c.put(chain));
        assertEquals(2, c.put(chain));
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
