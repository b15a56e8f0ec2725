package dev.ferrogate.plugin;

import dev.ferrogate.plugin.internal.Completions;
import java.util.concurrent.CompletionStage;

/**
 * A gateway plugin served by an external runner.
 *
 * <p>The gateway names a plugin in a route's {@code ext-plugin-pre-req}, {@code ext-plugin-post-req}
 * or {@code ext-plugin-post-resp} conf as {@code {"name": "<name()>", "value": "<conf>"}}. The runner
 * calls {@link #parseConf} once when the gateway prepares that conf, keeps the result for as long as
 * the conf token lives, and passes it to every filter call on that token. Conf objects are shared
 * between concurrent calls: keep them immutable.
 *
 * <p>Filters run synchronously on the connection's thread by default. A plugin that waits on I/O
 * can override {@link #filterAsync} or {@link #responseFilterAsync} and complete the returned stage
 * later; the runner answers that call when the stage completes (other connections keep going). A
 * filter that throws, or whose stage completes exceptionally, makes the runner answer the call with
 * an error, which the gateway turns into a 503 (or skips the plugin, with {@code allow_degradation}).
 *
 * <p>Implementations need a public no-argument constructor to be found by
 * {@link java.util.ServiceLoader} (file {@code META-INF/services/dev.ferrogate.plugin.Plugin}).
 *
 * @param <C> the parsed conf type
 */
public interface Plugin<C> {

    /** The name routes use for this plugin; unique within a runner. */
    String name();

    /**
     * Parses the conf string the gateway sent (the {@code value} of the conf entry, often JSON,
     * possibly empty). Called once per prepare, never per request.
     *
     * @throws Exception when the conf is invalid; the runner then refuses the whole prepare, so
     *     the route fails closed instead of running without this plugin
     */
    C parseConf(String conf) throws Exception;

    /**
     * The request filter (gateway phases {@code ext-plugin-pre-req} and {@code ext-plugin-post-req}).
     * Read and rewrite {@code request}; answer the client through {@code response} to end the chain.
     * Does nothing by default.
     */
    default void filter(C conf, Request request, Response response) throws Exception {
    }

    /**
     * The asynchronous form of {@link #filter}: the call is answered when the returned stage
     * completes. The default runs {@link #filter} and returns a completed stage.
     */
    default CompletionStage<Void> filterAsync(C conf, Request request, Response response) {
        try {
            filter(conf, request, response);
            return Completions.DONE;
        } catch (Exception e) {
            return Completions.failed(e);
        }
    }

    /**
     * The response filter (gateway phase {@code ext-plugin-post-resp}), after the upstream answered.
     * Does nothing by default.
     */
    default void responseFilter(C conf, UpstreamResponse response) throws Exception {
    }

    /** The asynchronous form of {@link #responseFilter}; the default runs it synchronously. */
    default CompletionStage<Void> responseFilterAsync(C conf, UpstreamResponse response) {
        try {
            responseFilter(conf, response);
            return Completions.DONE;
        } catch (Exception e) {
            return Completions.failed(e);
        }
    }
}
