package dev.ferrogate.plugin.testing;

import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.Request;
import dev.ferrogate.plugin.Response;
import dev.ferrogate.plugin.UpstreamResponse;
import java.util.concurrent.CompletionException;
import java.util.concurrent.TimeUnit;

/** Runs a plugin the way the runner does: conf parsed first, then the (possibly async) filter awaited. */
public final class PluginTester {
    private PluginTester() {
    }

    /**
     * Parses {@code conf} and runs the request filter to completion (at most 10 s).
     *
     * @throws Exception what parsing or the filter threw (unwrapped from the stage)
     */
    public static <C> void filter(Plugin<C> plugin, String conf, Request request, Response response) throws Exception {
        C parsed = plugin.parseConf(conf);
        await(() -> plugin.filterAsync(parsed, request, response).toCompletableFuture().get(10, TimeUnit.SECONDS));
    }

    /** Parses {@code conf} and runs the response filter to completion (at most 10 s). */
    public static <C> void responseFilter(Plugin<C> plugin, String conf, UpstreamResponse response) throws Exception {
        C parsed = plugin.parseConf(conf);
        await(() -> plugin.responseFilterAsync(parsed, response).toCompletableFuture().get(10, TimeUnit.SECONDS));
    }

    private interface Wait {
        void run() throws Exception;
    }

    private static void await(Wait w) throws Exception {
        try {
            w.run();
        } catch (java.util.concurrent.ExecutionException | CompletionException e) {
            Throwable cause = e.getCause();
            if (cause instanceof Exception ex) {
                throw ex;
            }
            throw e;
        }
    }
}
