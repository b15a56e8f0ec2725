package dev.ferrogate.examples;

import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.Request;
import dev.ferrogate.plugin.Response;

/** {@code served-by}: adds {@code X-Served-By} to the client's response, whoever answers it. */
public final class ServedBy implements Plugin<String> {
    @Override
    public String name() {
        return "served-by";
    }

    /** {@code {"value": "..."}}; default "ferrogate-java". */
    record Conf(String value) {
    }

    @Override
    public String parseConf(String conf) throws Exception {
        Conf c = Confs.parse(conf, Conf.class);
        return c.value() == null || c.value().isEmpty() ? "ferrogate-java" : c.value();
    }

    @Override
    public void filter(String value, Request request, Response response) {
        // Headers without a status or body do not answer: they are added to the upstream's response.
        response.setHeader("X-Served-By", value);
    }
}
