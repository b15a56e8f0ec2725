package dev.ferrogate.examples;

import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.Request;
import dev.ferrogate.plugin.Response;
import java.nio.charset.StandardCharsets;
import java.security.MessageDigest;

/**
 * {@code token-auth}: lets a request through only when its token header equals the value of a
 * gateway variable (asked through extra info, e.g. {@code arg_...} or one set by an earlier gateway
 * plugin), and answers 401 otherwise. The header is removed before the request goes upstream.
 */
public final class TokenAuth implements Plugin<TokenAuth.Conf> {
    /** {@code {"header": "x-token", "var": "..."}}; {@code var} is required. */
    public record Conf(String header, String var) {
        public Conf {
            header = header == null || header.isEmpty() ? "x-token" : header;
            if (var == null || var.isEmpty()) {
                throw new IllegalArgumentException("\"var\" is required");
            }
        }
    }

    @Override
    public String name() {
        return "token-auth";
    }

    @Override
    public Conf parseConf(String conf) throws Exception {
        return Confs.parse(conf, Conf.class);
    }

    @Override
    public void filter(Conf conf, Request request, Response response) {
        String got = request.header(conf.header());
        byte[] want = request.varBytes(conf.var());
        if (got == null || want == null || want.length == 0
                || !MessageDigest.isEqual(got.getBytes(StandardCharsets.UTF_8), want)) {
            response.setHeader("Content-Type", "application/json")
                .setStatus(401)
                .setBody("{\"message\":\"invalid token\"}");
            return;
        }
        request.removeHeader(conf.header());
    }
}
