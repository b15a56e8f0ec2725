package dev.ferrogate.plugin.internal;

import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;

/** Completed stages; the runner recognises {@link #DONE} by identity and skips waiting. */
public final class Completions {
    /** The stage the synchronous defaults return: completed, and not completable by anyone. */
    public static final CompletionStage<Void> DONE = CompletableFuture.completedStage(null);

    private Completions() {
    }

    public static CompletionStage<Void> failed(Throwable t) {
        return CompletableFuture.failedStage(t);
    }
}
