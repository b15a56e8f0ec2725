package dev.ferrogate.plugin.testing;

import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.internal.RequestState;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Locale;
import java.util.Map;

/**
 * A {@link dev.ferrogate.plugin.Request} built in memory. It applies rewrites exactly as the runner
 * does, and exposes what the runner would send: {@link #pathRewrite()}, {@link #headerRewrites()},
 * {@link #argRewrites()}, {@link #bodyRewrite()}. {@link #varRequests()} counts gateway round trips.
 */
public final class TestRequest extends RequestState {
    private final long id;
    private final String method;
    private final byte[] src;
    private final String path;
    private final List<Field> headers;
    private final List<Field> args;
    private final Map<String, byte[]> vars;
    private final byte[] body;
    private int varRequests;
    private int bodyRequests;

    private TestRequest(Builder b) {
        id = b.id;
        method = b.method;
        src = b.src;
        path = b.path;
        headers = List.copyOf(b.headers);
        args = List.copyOf(b.args);
        vars = Map.copyOf(b.vars);
        body = b.body;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** How many times variables were asked from the "gateway" (each {@code vars} call counts once). */
    public int varRequests() {
        return varRequests;
    }

    /** How many times the body was asked from the "gateway". */
    public int bodyRequests() {
        return bodyRequests;
    }

    @Override
    public long id() {
        return id;
    }

    @Override
    public byte[] sourceAddress() {
        return src.clone();
    }

    @Override
    protected String sourceMethod() {
        return method;
    }

    @Override
    protected String sourcePath() {
        return path;
    }

    @Override
    protected List<Field> sourceHeaders() {
        return headers;
    }

    @Override
    protected List<Field> sourceArgs() {
        return args;
    }

    @Override
    protected byte[][] fetchVars(String[] names) {
        varRequests++;
        byte[][] out = new byte[names.length][];
        for (int i = 0; i < names.length; i++) {
            out[i] = vars.get(names[i]);
        }
        return out;
    }

    @Override
    protected byte[] fetchBody() {
        bodyRequests++;
        return body;
    }

    /** Builds a {@link TestRequest}; defaults: id 1, GET, /, 127.0.0.1, nothing else. */
    public static final class Builder {
        private long id = 1;
        private String method = "GET";
        private byte[] src = {127, 0, 0, 1};
        private String path = "/";
        private final List<Field> headers = new ArrayList<>();
        private final List<Field> args = new ArrayList<>();
        private final Map<String, byte[]> vars = new HashMap<>();
        private byte[] body = new byte[0];

        public Builder id(long id) {
            this.id = id;
            return this;
        }

        public Builder method(String method) {
            this.method = method.toUpperCase(Locale.ROOT);
            return this;
        }

        /** The client address as 4 or 16 raw bytes. */
        public Builder sourceAddress(byte[] raw) {
            this.src = raw.clone();
            return this;
        }

        public Builder path(String path) {
            this.path = path;
            return this;
        }

        /** Adds a header entry (the name is lower-cased, as the gateway sends it). */
        public Builder header(String name, String value) {
            headers.add(new Field(name.toLowerCase(Locale.ROOT), value));
            return this;
        }

        /** Adds a query argument entry ({@code null} value for a flag). */
        public Builder arg(String name, String value) {
            args.add(new Field(name, value));
            return this;
        }

        /** Gives the "gateway" a value for a variable. */
        public Builder var(String name, String value) {
            vars.put(name, value.getBytes(StandardCharsets.UTF_8));
            return this;
        }

        public Builder body(String body) {
            this.body = body.getBytes(StandardCharsets.UTF_8);
            return this;
        }

        public Builder body(byte[] body) {
            this.body = body.clone();
            return this;
        }

        public TestRequest build() {
            return new TestRequest(this);
        }
    }
}
