package dev.ferrogate.plugin;

import java.util.List;
import java.util.Map;

/**
 * The HTTP request in a request filter: what the gateway sent, with the rewrites of the earlier
 * plugins of the chain applied, and the rewrites this plugin asks for.
 *
 * <p>Strings are decoded from the wire bytes as UTF-8; bytes that are not UTF-8 read as U+FFFD.
 * Header names compare case-insensitively, argument names exactly.
 *
 * <p>Variables and the body are not sent up front: the first {@link #var}, {@link #vars} or
 * {@link #body} call asks the gateway for them (one round trip on the connection) and the answer is
 * cached for the rest of the call. These methods block; call them from the filter or from a thread
 * the filter waits on, never after the filter has completed.
 *
 * <p>Rewrites are sent to the gateway when the chain ends, unless a plugin answered the client.
 */
public interface Request {

    /** The gateway's id of this call (never 0). */
    long id();

    /** The method, upper case ({@code "GET"}, {@code "POST"}, ...). */
    String method();

    /** The client address as raw bytes: 4 for IPv4, 16 for IPv6 (empty if the gateway sent none). */
    byte[] sourceAddress();

    /** The client address as text ({@code "127.0.0.1"}, {@code "::1"}), or "" if unknown. */
    String sourceIp();

    /** The path without query string, as the gateway will send it upstream. */
    String path();

    /** The first value of a header, or {@code null}. */
    String header(String name);

    /** Every value of a header, in order (empty if none). */
    List<String> headerValues(String name);

    /** Every header entry in order, one per value, names lower-cased as the gateway sent them. */
    List<Field> headers();

    /** The first value of a query argument ({@code ""} for {@code ?k=}, {@code null} for {@code ?k} or absent). */
    String arg(String name);

    /** Every value of a query argument, in order ({@code null} elements for flags without value). */
    List<String> argValues(String name);

    /** Every query argument in order; a flag such as {@code ?debug} has a {@code null} value. */
    List<Field> args();

    /**
     * A gateway variable ({@code remote_addr}, {@code route_id}, {@code http_x_foo}, ...), or
     * {@code null} when the gateway has no value for it. Asks the gateway on first use.
     */
    String var(String name);

    /** {@link #var} as raw bytes. */
    byte[] varBytes(String name);

    /**
     * Several variables in one round trip (the questions are sent back to back). The map has one
     * entry per name, in the given order, with {@code null} values for unknown variables.
     */
    Map<String, String> vars(String... names);

    /** The request body (empty if none), read from the gateway on first use; or the one set here. */
    byte[] body();

    /** Sends the upstream request to this path (the query string is kept). */
    void setPath(String path);

    /** Sets a request header, replacing every value it had (the name is sent lower-cased). */
    void setHeader(String name, String value);

    /** Removes a request header. */
    void removeHeader(String name);

    /** Sets a query argument, replacing every value it had. */
    void setArg(String name, String value);

    /** Adds a value to a query argument, keeping the values it had. */
    void addArg(String name, String value);

    /** Removes a query argument (every value). */
    void removeArg(String name);

    /** Replaces the request body sent upstream. An empty body leaves the original one in place. */
    void setBody(byte[] body);

    /** {@link #setBody(byte[])} with the string's UTF-8 bytes. */
    void setBody(String body);
}
