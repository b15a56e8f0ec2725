package dev.ferrogate.examples;

import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.Request;
import dev.ferrogate.plugin.Response;

/**
 * {@code rewrite-path}: replaces a path prefix before the request goes upstream, tells the upstream
 * the original path in {@code X-Original-Path}, and drops the {@code debug} query argument.
 */
public final class RewritePath implements Plugin<RewritePath.Conf> {
    /** {@code {"from": "/old", "to": "/new"}}; {@code from} must start with /. */
    public record Conf(String from, String to) {
        public Conf {
            if (from == null || !from.startsWith("/")) {
                throw new IllegalArgumentException("\"from\" must start with /");
            }
            to = to == null ? "" : to;
        }
    }

    @Override
    public String name() {
        return "rewrite-path";
    }

    @Override
    public Conf parseConf(String conf) throws Exception {
        return Confs.parse(conf, Conf.class);
    }

    @Override
    public void filter(Conf conf, Request request, Response response) {
        String path = request.path();
        if (!path.startsWith(conf.from())) {
            return;
        }
        request.setPath(conf.to() + path.substring(conf.from().length()));
        request.setHeader("X-Original-Path", path);
        if (!request.argValues("debug").isEmpty()) {
            request.removeArg("debug");
        }
    }
}
