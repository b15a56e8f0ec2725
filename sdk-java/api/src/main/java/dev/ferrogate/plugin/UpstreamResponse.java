package dev.ferrogate.plugin;

import java.util.List;
import java.util.Map;

/**
 * The upstream's response in a response filter ({@code ext-plugin-post-resp}), and the changes
 * the plugin asks for.
 *
 * <p>Header reads reflect the changes made so far. When a plugin changes any header, the runner
 * sends the complete resulting header list: the gateway (like APISIX) takes a non-empty list as the
 * whole header set, replacing the upstream's. An empty resulting list keeps the upstream's headers.
 */
public interface UpstreamResponse {

    /** The gateway's id of this call. */
    long id();

    /** The status: the upstream's, or the one set by a plugin. */
    int status();

    /** The first value of a header, or {@code null}. */
    String header(String name);

    /** Every value of a header, in order. */
    List<String> headerValues(String name);

    /** Every header entry in order. */
    List<Field> headers();

    /** A gateway variable, or {@code null}; asked on first use, then cached. */
    String var(String name);

    /** {@link #var} as raw bytes. */
    byte[] varBytes(String name);

    /** Several variables in one round trip, in order, {@code null} values for unknown ones. */
    Map<String, String> vars(String... names);

    /** The whole upstream body, read from the gateway on first use (empty if none). */
    byte[] upstreamBody();

    /** Replaces the status sent to the client. */
    void setStatus(int status);

    /** Sets a header, replacing its values. */
    void setHeader(String name, String value);

    /** Adds a header value; {@code null} adds an entry without value. */
    void addHeader(String name, String value);

    /** Removes a header. */
    void removeHeader(String name);

    /** Removes every header (then add the ones to send: a non-empty list replaces the upstream's). */
    void clearHeaders();

    /** Replaces the body sent to the client (an empty body keeps the upstream's). */
    void setBody(byte[] body);

    /** {@link #setBody(byte[])} with the string's UTF-8 bytes. */
    void setBody(String body);
}
