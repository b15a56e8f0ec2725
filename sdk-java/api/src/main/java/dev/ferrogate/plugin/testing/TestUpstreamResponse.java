package dev.ferrogate.plugin.testing;

import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.internal.UpstreamState;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;

/**
 * An {@link dev.ferrogate.plugin.UpstreamResponse} built in memory; what the runner would send is in
 * {@link #statusChange()}, {@link #headersChange()} and {@link #bodyChange()}.
 */
public final class TestUpstreamResponse extends UpstreamState {
    private final long id;
    private final int status;
    private final List<Field> headers;
    private final Map<String, byte[]> vars;
    private final byte[] body;
    private int bodyRequests;

    private TestUpstreamResponse(Builder b) {
        id = b.id;
        status = b.status;
        headers = List.copyOf(b.headers);
        vars = Map.copyOf(b.vars);
        body = b.body;
    }

    public static Builder builder() {
        return new Builder();
    }

    /** How many times the upstream body was asked from the "gateway". */
    public int bodyRequests() {
        return bodyRequests;
    }

    /** The body that would be sent, as UTF-8 ("" when unchanged). */
    public String bodyChangeText() {
        byte[] b = bodyChange();
        return b == null ? "" : new String(b, StandardCharsets.UTF_8);
    }

    @Override
    public long id() {
        return id;
    }

    @Override
    protected int sourceStatus() {
        return status;
    }

    @Override
    protected List<Field> sourceHeaders() {
        return headers;
    }

    @Override
    protected byte[][] fetchVars(String[] names) {
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

    /** Builds a {@link TestUpstreamResponse}; defaults: id 1, status 200, no headers, empty body. */
    public static final class Builder {
        private long id = 1;
        private int status = 200;
        private final List<Field> headers = new ArrayList<>();
        private final Map<String, byte[]> vars = new HashMap<>();
        private byte[] body = new byte[0];

        public Builder id(long id) {
            this.id = id;
            return this;
        }

        public Builder status(int status) {
            this.status = status;
            return this;
        }

        public Builder header(String name, String value) {
            headers.add(new Field(name, value));
            return this;
        }

        public Builder var(String name, String value) {
            vars.put(name, value.getBytes(StandardCharsets.UTF_8));
            return this;
        }

        public Builder body(String body) {
            this.body = body.getBytes(StandardCharsets.UTF_8);
            return this;
        }

        public TestUpstreamResponse build() {
            return new TestUpstreamResponse(this);
        }
    }
}
