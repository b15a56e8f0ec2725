package dev.ferrogate.conformance;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.Request;
import dev.ferrogate.plugin.Response;
import java.util.List;

/** {@code conf-stop}: answer with the conf's status (200 when missing), headers in order and body. */
public final class ConfStop implements Plugin<ConfStop.Conf> {
    record Conf(int status, List<Field> headers, String body) {
    }

    @Override
    public String name() {
        return "conf-stop";
    }

    @Override
    public Conf parseConf(String conf) throws Exception {
        JsonNode c = Json.object(conf);
        return new Conf(Json.integer(c, "status", 200), Json.pairs(c, "headers"), Json.text(c, "body"));
    }

    @Override
    public void filter(Conf conf, Request request, Response response) {
        response.setStatus(conf.status());
        for (Field h : conf.headers()) {
            if (h.value() == null) {
                response.removeHeader(h.name());
            } else {
                response.addHeader(h.name(), h.value());
            }
        }
        if (conf.body() != null) {
            response.setBody(conf.body());
        }
    }
}
