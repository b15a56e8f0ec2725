package dev.ferrogate.conformance;

import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.Request;
import dev.ferrogate.plugin.Response;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.TimeUnit;

/** {@code conf-sleep}: wait {@code ms} milliseconds (asynchronously), then continue unchanged. */
public final class ConfSleep implements Plugin<Long> {
    @Override
    public String name() {
        return "conf-sleep";
    }

    @Override
    public Long parseConf(String conf) throws Exception {
        int ms = Json.integer(Json.object(conf), "ms", 0);
        if (ms < 0) {
            throw new IllegalArgumentException("ms must not be negative");
        }
        return (long) ms;
    }

    @Override
    public CompletionStage<Void> filterAsync(Long ms, Request request, Response response) {
        return CompletableFuture.runAsync(() -> { }, CompletableFuture.delayedExecutor(ms, TimeUnit.MILLISECONDS));
    }
}
