package dev.ferrogate.plugin.internal;

import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.Request;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * A {@link Request} over an abstract source (the wire message in the runner, lists in tests): it
 * records rewrites in the gateway's terms and answers reads with those rewrites applied.
 *
 * <p>Rewrite lists keep one entry per header name (the last set or delete) and, for arguments,
 * the entries that reproduce the requested values under the gateway's "first replaces, later
 * append" rule.
 */
public abstract class RequestState implements Request {
    private static final byte[] EMPTY = new byte[0];
    private static final Object ABSENT = new Object();

    private String path;
    private final List<Field> headerRewrites = new ArrayList<>(2);
    private final List<Field> argRewrites = new ArrayList<>(2);
    private byte[] newBody;
    private Map<String, Object> varCache;
    private byte[] bodyCache;

    // ---------------------------------------------------------------- source

    /** The method name, upper case. */
    protected abstract String sourceMethod();

    /** The path as received. */
    protected abstract String sourcePath();

    /** The headers as received. */
    protected abstract List<Field> sourceHeaders();

    /** The first value of a received header (lower-case name), or null; override to avoid decoding all. */
    protected String sourceHeader(String lowerName) {
        return Fields.first(sourceHeaders(), lowerName, true);
    }

    /** The arguments as received. */
    protected abstract List<Field> sourceArgs();

    /** Asks the gateway for variables, answers in order (null = no value). */
    protected abstract byte[][] fetchVars(String[] names);

    /** Asks the gateway for the request body. */
    protected abstract byte[] fetchBody();

    // ---------------------------------------------------------------- rewrites, for the runner

    /** The new path, or null. */
    public final String pathRewrite() {
        return path;
    }

    /** Header rewrites in order (null value = delete). */
    public final List<Field> headerRewrites() {
        return headerRewrites;
    }

    /** Argument rewrites in order (null value = delete). */
    public final List<Field> argRewrites() {
        return argRewrites;
    }

    /** The new body, or null. */
    public final byte[] bodyRewrite() {
        return newBody;
    }

    /** Whether any rewrite was asked for. */
    public final boolean rewritten() {
        return path != null || !headerRewrites.isEmpty() || !argRewrites.isEmpty() || newBody != null;
    }

    // ---------------------------------------------------------------- reads

    @Override
    public String method() {
        return sourceMethod();
    }

    @Override
    public String sourceIp() {
        return Fields.ipText(sourceAddress());
    }

    @Override
    public String path() {
        return path != null ? path : sourcePath();
    }

    @Override
    public String header(String name) {
        if (!headerRewrites.isEmpty()) {
            for (int i = headerRewrites.size() - 1; i >= 0; i--) {
                Field f = headerRewrites.get(i);
                if (f.name().equalsIgnoreCase(name)) {
                    return f.value();
                }
            }
        }
        return sourceHeader(name.toLowerCase(java.util.Locale.ROOT));
    }

    @Override
    public List<String> headerValues(String name) {
        return Fields.values(headers(), name, true);
    }

    @Override
    public List<Field> headers() {
        return Collections.unmodifiableList(Fields.applyHeaderRewrites(sourceHeaders(), headerRewrites));
    }

    @Override
    public String arg(String name) {
        return Fields.first(args(), name, false);
    }

    @Override
    public List<String> argValues(String name) {
        return Fields.values(args(), name, false);
    }

    @Override
    public List<Field> args() {
        return Collections.unmodifiableList(Fields.applyArgRewrites(sourceArgs(), argRewrites));
    }

    @Override
    public String var(String name) {
        byte[] v = varBytes(name);
        return v == null ? null : new String(v, StandardCharsets.UTF_8);
    }

    @Override
    public synchronized byte[] varBytes(String name) {
        Objects.requireNonNull(name, "name");
        if (varCache != null) {
            Object hit = varCache.get(name);
            if (hit != null) {
                return hit == ABSENT ? null : (byte[]) hit;
            }
        }
        byte[] v = fetchVars(new String[] {name})[0];
        cacheVar(name, v);
        return v;
    }

    @Override
    public synchronized Map<String, String> vars(String... names) {
        byte[][] values = new byte[names.length][];
        List<String> missing = new ArrayList<>(names.length);
        for (String n : names) {
            Objects.requireNonNull(n, "name");
            if ((varCache == null || !varCache.containsKey(n)) && !missing.contains(n)) {
                missing.add(n);
            }
        }
        if (!missing.isEmpty()) {
            String[] ask = missing.toArray(new String[0]);
            byte[][] got = fetchVars(ask);
            for (int i = 0; i < ask.length; i++) {
                cacheVar(ask[i], got[i]);
            }
        }
        for (int i = 0; i < names.length; i++) {
            Object hit = varCache.get(names[i]);
            values[i] = hit == ABSENT ? null : (byte[]) hit;
        }
        return Fields.varMap(names, values);
    }

    private void cacheVar(String name, byte[] value) {
        if (varCache == null) {
            varCache = new HashMap<>(8);
        }
        varCache.put(name, value == null ? ABSENT : value);
    }

    @Override
    public synchronized byte[] body() {
        if (newBody != null) {
            return newBody;
        }
        if (bodyCache == null) {
            byte[] b = fetchBody();
            bodyCache = b == null ? EMPTY : b;
        }
        return bodyCache;
    }

    // ---------------------------------------------------------------- rewrites

    @Override
    public void setPath(String path) {
        this.path = Objects.requireNonNull(path, "path");
    }

    @Override
    public void setHeader(String name, String value) {
        Fields.requireName(name);
        Objects.requireNonNull(value, "value (use removeHeader to delete)");
        Fields.removeAll(headerRewrites, name, true);
        // Lower-cased like the names the gateway sends (HTTP names are case-insensitive).
        headerRewrites.add(new Field(name.toLowerCase(java.util.Locale.ROOT), value));
    }

    @Override
    public void removeHeader(String name) {
        Fields.requireName(name);
        Fields.removeAll(headerRewrites, name, true);
        headerRewrites.add(new Field(name.toLowerCase(java.util.Locale.ROOT), null));
    }

    @Override
    public void setArg(String name, String value) {
        Fields.requireName(name);
        Objects.requireNonNull(value, "value (use removeArg to delete)");
        Fields.removeAll(argRewrites, name, false);
        argRewrites.add(new Field(name, value));
    }

    @Override
    public void addArg(String name, String value) {
        Fields.requireName(name);
        Objects.requireNonNull(value, "value");
        if (!Fields.contains(argRewrites, name, false)) {
            // The first entry of a name replaces its values at the gateway: restate the current ones.
            for (Field f : sourceArgs()) {
                if (f.name().equals(name)) {
                    argRewrites.add(new Field(name, f.value() == null ? "" : f.value()));
                }
            }
        }
        argRewrites.add(new Field(name, value));
    }

    @Override
    public void removeArg(String name) {
        Fields.requireName(name);
        Fields.removeAll(argRewrites, name, false);
        argRewrites.add(new Field(name, null));
    }

    @Override
    public void setBody(byte[] body) {
        Objects.requireNonNull(body, "body");
        this.newBody = body.length == 0 ? null : body;
    }

    @Override
    public void setBody(String body) {
        setBody(body.getBytes(StandardCharsets.UTF_8));
    }
}
