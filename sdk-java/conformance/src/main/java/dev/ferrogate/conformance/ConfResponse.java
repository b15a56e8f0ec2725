package dev.ferrogate.conformance;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.UpstreamResponse;
import java.nio.charset.StandardCharsets;
import java.util.List;

/**
 * {@code conf-response}: answer the response call with the conf's status (0 keeps the upstream's),
 * exactly those headers (a non-empty list replaces the upstream's), and that body, or
 * {@code body_prefix} + the upstream body (read through extra info).
 */
public final class ConfResponse implements Plugin<ConfResponse.Conf> {
    record Conf(int status, List<Field> headers, String body, String bodyPrefix) {
    }

    @Override
    public String name() {
        return "conf-response";
    }

    @Override
    public Conf parseConf(String conf) throws Exception {
        JsonNode c = Json.object(conf);
        return new Conf(Json.integer(c, "status", 0), Json.pairs(c, "headers"), Json.text(c, "body"),
            Json.text(c, "body_prefix"));
    }

    @Override
    public void responseFilter(Conf conf, UpstreamResponse response) {
        if (conf.status() != 0) {
            response.setStatus(conf.status());
        }
        if (!conf.headers().isEmpty()) {
            response.clearHeaders();
            for (Field h : conf.headers()) {
                response.addHeader(h.name(), h.value());
            }
        }
        if (conf.bodyPrefix() != null) {
            byte[] prefix = conf.bodyPrefix().getBytes(StandardCharsets.UTF_8);
            byte[] upstream = response.upstreamBody();
            byte[] body = new byte[prefix.length + upstream.length];
            System.arraycopy(prefix, 0, body, 0, prefix.length);
            System.arraycopy(upstream, 0, body, prefix.length, upstream.length);
            response.setBody(body);
        } else if (conf.body() != null) {
            response.setBody(conf.body());
        }
    }
}
