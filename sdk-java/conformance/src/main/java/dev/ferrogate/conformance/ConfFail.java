package dev.ferrogate.conformance;

import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.Request;
import dev.ferrogate.plugin.Response;

/** {@code conf-fail}: throws, the way Java fails; the runner answers SERVICE_UNAVAILABLE and keeps serving. */
public final class ConfFail implements Plugin<String> {
    @Override
    public String name() {
        return "conf-fail";
    }

    @Override
    public String parseConf(String conf) {
        return conf;
    }

    @Override
    public void filter(String conf, Request request, Response response) {
        throw new IllegalStateException("conf-fail fails on purpose");
    }
}
