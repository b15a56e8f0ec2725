package dev.ferrogate.plugin.internal;

import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.UpstreamResponse;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/** An {@link UpstreamResponse} over an abstract source, recording the changes for the runner. */
public abstract class UpstreamState implements UpstreamResponse {
    private static final byte[] EMPTY = new byte[0];
    private static final Object ABSENT = new Object();

    private int newStatus;
    private List<Field> newHeaders;
    private byte[] newBody;
    private Map<String, Object> varCache;
    private byte[] bodyCache;

    protected abstract int sourceStatus();

    protected abstract List<Field> sourceHeaders();

    protected abstract byte[][] fetchVars(String[] names);

    /** Asks the gateway for the upstream body. */
    protected abstract byte[] fetchBody();

    /** The status to send, or 0 to keep the upstream's. */
    public final int statusChange() {
        return newStatus;
    }

    /** The complete header list to send, or null when headers were not changed. */
    public final List<Field> headersChange() {
        return newHeaders;
    }

    /** The body to send, or null. */
    public final byte[] bodyChange() {
        return newBody;
    }

    @Override
    public int status() {
        return newStatus != 0 ? newStatus : sourceStatus();
    }

    @Override
    public String header(String name) {
        return Fields.first(headers(), name, true);
    }

    @Override
    public List<String> headerValues(String name) {
        return Fields.values(headers(), name, true);
    }

    @Override
    public List<Field> headers() {
        return Collections.unmodifiableList(newHeaders != null ? newHeaders : sourceHeaders());
    }

    private List<Field> editable() {
        if (newHeaders == null) {
            newHeaders = new ArrayList<>(sourceHeaders());
        }
        return newHeaders;
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
        byte[][] values = new byte[names.length][];
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
    public synchronized byte[] upstreamBody() {
        if (bodyCache == null) {
            byte[] b = fetchBody();
            bodyCache = b == null ? EMPTY : b;
        }
        return bodyCache;
    }

    @Override
    public void setStatus(int status) {
        if (status < 100 || status > 599) {
            throw new IllegalArgumentException("status out of range: " + status);
        }
        newStatus = status;
    }

    @Override
    public void setHeader(String name, String value) {
        Fields.requireName(name);
        Objects.requireNonNull(value, "value (use removeHeader to delete)");
        List<Field> h = editable();
        int at = -1;
        for (int i = 0; i < h.size(); i++) {
            if (h.get(i).name().equalsIgnoreCase(name)) {
                at = i;
                break;
            }
        }
        Fields.removeAll(h, name, true);
        Field f = new Field(name, value);
        if (at < 0) {
            h.add(f);
        } else {
            h.add(at, f);
        }
    }

    @Override
    public void addHeader(String name, String value) {
        Fields.requireName(name);
        editable().add(new Field(name, value));
    }

    @Override
    public void removeHeader(String name) {
        Fields.requireName(name);
        Fields.removeAll(editable(), name, true);
    }

    @Override
    public void clearHeaders() {
        editable().clear();
    }

    @Override
    public void setBody(byte[] body) {
        Objects.requireNonNull(body, "body");
        newBody = body.length == 0 ? null : body;
    }

    @Override
    public void setBody(String body) {
        setBody(body.getBytes(StandardCharsets.UTF_8));
    }
}
