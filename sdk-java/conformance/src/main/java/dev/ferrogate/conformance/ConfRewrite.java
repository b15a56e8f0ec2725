package dev.ferrogate.conformance;

import com.fasterxml.jackson.databind.JsonNode;
import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.Request;
import dev.ferrogate.plugin.Response;
import java.util.HashSet;
import java.util.List;
import java.util.Set;

/**
 * {@code conf-rewrite}: rewrite path, headers, args, body and response headers as the conf says
 * (a null value deletes). Arguments named twice keep both values (the second one is added).
 */
public final class ConfRewrite implements Plugin<ConfRewrite.Conf> {
    record Conf(String path, List<Field> headers, List<Field> args, String body, List<Field> respHeaders) {
    }

    @Override
    public String name() {
        return "conf-rewrite";
    }

    @Override
    public Conf parseConf(String conf) throws Exception {
        JsonNode c = Json.object(conf);
        return new Conf(Json.text(c, "path"), Json.pairs(c, "headers"), Json.pairs(c, "args"),
            Json.text(c, "body"), Json.pairs(c, "resp_headers"));
    }

    @Override
    public void filter(Conf conf, Request request, Response response) {
        if (conf.path() != null) {
            request.setPath(conf.path());
        }
        for (Field h : conf.headers()) {
            if (h.value() == null) {
                request.removeHeader(h.name());
            } else {
                request.setHeader(h.name(), h.value());
            }
        }
        Set<String> seen = new HashSet<>();
        for (Field a : conf.args()) {
            if (a.value() == null) {
                request.removeArg(a.name());
            } else if (seen.contains(a.name())) {
                request.addArg(a.name(), a.value());
            } else {
                request.setArg(a.name(), a.value());
            }
            seen.add(a.name());
        }
        if (conf.body() != null) {
            request.setBody(conf.body());
        }
        for (Field h : conf.respHeaders()) {
            if (h.value() == null) {
                response.removeHeader(h.name());
            } else {
                response.addHeader(h.name(), h.value());
            }
        }
    }
}
