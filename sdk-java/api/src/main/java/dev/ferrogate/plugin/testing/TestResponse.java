package dev.ferrogate.plugin.testing;

import dev.ferrogate.plugin.internal.ResponseState;
import java.nio.charset.StandardCharsets;

/**
 * A recording {@link dev.ferrogate.plugin.Response}: {@link #answered()}, {@link #status()} (0 when
 * not set), {@link #headers()} (entries as sent, null value = remove) and {@link #body()}.
 */
public final class TestResponse extends ResponseState {
    /** The body as UTF-8 text ("" when none). */
    public String bodyText() {
        byte[] b = body();
        return b == null ? "" : new String(b, StandardCharsets.UTF_8);
    }
}
