package dev.ferrogate.plugin;

/**
 * The answer of a request filter.
 *
 * <p>Giving it a status or a body, or calling {@link #stop()}, answers the client now: the chain
 * ends, the upstream is not contacted, and the gateway replies with this status (200 when not set),
 * these headers and this body.
 *
 * <p>Headers set without answering are added to the response the client eventually gets from the
 * upstream (the gateway ignores a few hop-by-hop and content headers there; see its docs).
 *
 * <p>Header lists follow the gateway's rules: for each name, the first entry sets the header
 * (replacing what the upstream sent), later entries add values, an entry without value removes it.
 * The response is shared by the plugins of one chain.
 */
public interface Response {

    /** Answers the client with this status. */
    Response setStatus(int status);

    /** Sets a header, replacing what earlier calls (or plugins) set for that name. */
    Response setHeader(String name, String value);

    /** Adds a header value (the first value of a name replaces the upstream's header). */
    Response addHeader(String name, String value);

    /** Removes a header from the client response. */
    Response removeHeader(String name);

    /** Answers the client with this body (an empty body sends none). */
    Response setBody(byte[] body);

    /** {@link #setBody(byte[])} with the string's UTF-8 bytes. */
    Response setBody(String body);

    /** Answers the client with what was set so far (status 200 if none). */
    Response stop();

    /** Whether a plugin answered the client. */
    boolean answered();
}
