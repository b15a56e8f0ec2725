package dev.ferrogate.examples;

import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.Request;
import dev.ferrogate.plugin.Response;

/** {@code say}: answers every request itself; the upstream is never contacted. */
public final class Say implements Plugin<Say.Conf> {
    /** {@code {"status": 200, "body": "hello"}}; status defaults to 200. */
    public record Conf(Integer status, String body) {
    }

    @Override
    public String name() {
        return "say";
    }

    @Override
    public Conf parseConf(String conf) throws Exception {
        return Confs.parse(conf, Conf.class);
    }

    @Override
    public void filter(Conf conf, Request request, Response response) {
        response.setHeader("Content-Type", "text/plain; charset=utf-8")
            .setStatus(conf.status() == null ? 200 : conf.status())
            .setBody(conf.body() == null ? "" : conf.body());
    }
}
