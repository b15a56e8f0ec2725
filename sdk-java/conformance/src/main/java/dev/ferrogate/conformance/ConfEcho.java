package dev.ferrogate.conformance;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.Request;
import dev.ferrogate.plugin.Response;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;
import java.util.Map;

/**
 * {@code conf-echo}: answer 200 with a JSON description of the request as the plugin sees it;
 * {@code vars} are fetched in one extra-info round trip, the body only when {@code body} is true.
 */
public final class ConfEcho implements Plugin<ConfEcho.Conf> {
    record Conf(String[] vars, boolean body) {
    }

    @Override
    public String name() {
        return "conf-echo";
    }

    @Override
    public Conf parseConf(String conf) throws Exception {
        JsonNode c = Json.object(conf);
        List<String> vars = new ArrayList<>();
        JsonNode v = c.get("vars");
        if (v != null && !v.isNull()) {
            if (!v.isArray()) {
                throw new IllegalArgumentException("vars must be an array of names");
            }
            for (JsonNode n : v) {
                if (!n.isTextual()) {
                    throw new IllegalArgumentException("vars must be an array of names");
                }
                vars.add(n.asText());
            }
        }
        JsonNode b = c.get("body");
        return new Conf(vars.toArray(new String[0]), b != null && b.asBoolean(false));
    }

    @Override
    public void filter(Conf conf, Request request, Response response) throws Exception {
        ObjectNode out = Json.MAPPER.createObjectNode();
        out.put("method", request.method());
        out.put("path", request.path());
        out.put("src_ip", request.sourceIp());
        out.set("args", pairs(request.args()));
        out.set("headers", pairs(request.headers()));
        ObjectNode vars = out.putObject("vars");
        if (conf.vars().length > 0) {
            for (Map.Entry<String, String> e : request.vars(conf.vars()).entrySet()) {
                vars.put(e.getKey(), e.getValue());
            }
        }
        if (conf.body()) {
            out.put("body", new String(request.body(), StandardCharsets.UTF_8));
        } else {
            out.putNull("body");
        }
        response.setStatus(200)
            .setHeader("Content-Type", "application/json")
            .setBody(Json.MAPPER.writeValueAsBytes(out));
    }

    private static ArrayNode pairs(List<Field> fields) {
        ArrayNode a = Json.MAPPER.createArrayNode();
        for (Field f : fields) {
            ArrayNode p = a.addArray();
            p.add(f.name());
            if (f.value() == null) {
                p.addNull();
            } else {
                p.add(f.value());
            }
        }
        return a;
    }
}
