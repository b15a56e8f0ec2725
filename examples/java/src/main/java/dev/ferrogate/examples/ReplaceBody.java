package dev.ferrogate.examples;

import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.UpstreamResponse;
import java.nio.charset.StandardCharsets;

/**
 * {@code replace-body}: rewrites the upstream's response body (a response filter: route it with
 * {@code ext-plugin-post-resp}) and marks the response with {@code X-Body-Rewritten}.
 */
public final class ReplaceBody implements Plugin<ReplaceBody.Conf> {
    /** {@code {"find": "...", "replace": "..."}}. */
    public record Conf(String find, String replace) {
        public Conf {
            find = find == null ? "" : find;
            replace = replace == null ? "" : replace;
        }
    }

    @Override
    public String name() {
        return "replace-body";
    }

    @Override
    public Conf parseConf(String conf) throws Exception {
        return Confs.parse(conf, Conf.class);
    }

    @Override
    public void responseFilter(Conf conf, UpstreamResponse response) {
        if (conf.find().isEmpty()) {
            return;
        }
        String body = new String(response.upstreamBody(), StandardCharsets.UTF_8);
        if (!body.contains(conf.find())) {
            return;
        }
        // Changing a header sends the whole (upstream + this) header list, as the protocol wants.
        response.setHeader("X-Body-Rewritten", "1");
        response.removeHeader("Content-Length");
        response.setBody(body.replace(conf.find(), conf.replace()));
    }
}
