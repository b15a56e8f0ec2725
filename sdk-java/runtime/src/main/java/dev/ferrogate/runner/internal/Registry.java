package dev.ferrogate.runner.internal;

import dev.ferrogate.plugin.Plugin;
import java.util.Collection;
import java.util.Map;
import java.util.TreeMap;

/** Plugins by name; rejects duplicate and empty names. */
public final class Registry {
    private final Map<String, Plugin<Object>> byName;

    @SuppressWarnings("unchecked")
    public Registry(Collection<? extends Plugin<?>> plugins) {
        Map<String, Plugin<Object>> m = new TreeMap<>();
        for (Plugin<?> p : plugins) {
            String name = p.name();
            if (name == null || name.isEmpty()) {
                throw new IllegalArgumentException("plugin " + p.getClass().getName() + " has no name");
            }
            Plugin<?> old = m.put(name, (Plugin<Object>) p);
            if (old != null) {
                throw new IllegalArgumentException("two plugins named \"" + name + "\": "
                    + old.getClass().getName() + " and " + p.getClass().getName());
            }
        }
        byName = Map.copyOf(m);
    }

    Plugin<Object> get(String name) {
        return byName.get(name);
    }

    /** The names, sorted. */
    public java.util.List<String> names() {
        return byName.keySet().stream().sorted().toList();
    }
}
