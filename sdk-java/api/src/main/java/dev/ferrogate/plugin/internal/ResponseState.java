package dev.ferrogate.plugin.internal;

import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.Response;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.Collections;
import java.util.List;
import java.util.Objects;

/** The {@link Response} of a request filter, as data the runner encodes. */
public class ResponseState implements Response {
    private boolean answered;
    private int status;
    private final List<Field> headers = new ArrayList<>(2);
    private byte[] body;

    @Override
    public Response setStatus(int status) {
        if (status < 100 || status > 599) {
            throw new IllegalArgumentException("status out of range: " + status);
        }
        this.status = status;
        this.answered = true;
        return this;
    }

    @Override
    public Response setHeader(String name, String value) {
        Fields.requireName(name);
        Objects.requireNonNull(value, "value (use removeHeader to delete)");
        Fields.removeAll(headers, name, true);
        headers.add(new Field(name, value));
        return this;
    }

    @Override
    public Response addHeader(String name, String value) {
        Fields.requireName(name);
        Objects.requireNonNull(value, "value");
        headers.add(new Field(name, value));
        return this;
    }

    @Override
    public Response removeHeader(String name) {
        Fields.requireName(name);
        Fields.removeAll(headers, name, true);
        headers.add(new Field(name, null));
        return this;
    }

    @Override
    public Response setBody(byte[] body) {
        Objects.requireNonNull(body, "body");
        this.body = body.length == 0 ? null : body;
        this.answered = true;
        return this;
    }

    @Override
    public Response setBody(String body) {
        return setBody(body.getBytes(StandardCharsets.UTF_8));
    }

    @Override
    public Response stop() {
        answered = true;
        return this;
    }

    @Override
    public boolean answered() {
        return answered;
    }

    /** The status set, or 0 when none was. */
    public int status() {
        return status;
    }

    /** The header entries in order (null value = remove). */
    public List<Field> headers() {
        return Collections.unmodifiableList(headers);
    }

    /** The body, or null. */
    public byte[] body() {
        return body;
    }
}
