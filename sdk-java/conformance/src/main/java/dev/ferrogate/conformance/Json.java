package dev.ferrogate.conformance;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.ferrogate.plugin.Field;
import java.io.IOException;
import java.util.ArrayList;
import java.util.List;

/** Conf parsing shared by the conformance plugins. */
final class Json {
    static final ObjectMapper MAPPER = new ObjectMapper();

    private Json() {
    }

    /** The conf object ({} for an empty conf). */
    static JsonNode object(String conf) throws IOException {
        if (conf == null || conf.isBlank()) {
            return MAPPER.createObjectNode();
        }
        JsonNode n = MAPPER.readTree(conf);
        if (!(n instanceof ObjectNode)) {
            throw new IllegalArgumentException("conf must be a JSON object");
        }
        return n;
    }

    /** A {@code pairs} field: [[name, value-or-null], ...]; empty when absent. */
    static List<Field> pairs(JsonNode conf, String field) {
        JsonNode a = conf.get(field);
        if (a == null || a.isNull()) {
            return List.of();
        }
        if (!a.isArray()) {
            throw new IllegalArgumentException(field + " must be an array of [name, value] pairs");
        }
        List<Field> out = new ArrayList<>(a.size());
        for (JsonNode p : a) {
            if (!p.isArray() || p.size() != 2 || !p.get(0).isTextual() || !(p.get(1).isTextual() || p.get(1).isNull())) {
                throw new IllegalArgumentException(field + ": each pair is [string, string or null]");
            }
            out.add(new Field(p.get(0).asText(), p.get(1).isNull() ? null : p.get(1).asText()));
        }
        return List.copyOf(out);
    }

    /** A string field, or null. */
    static String text(JsonNode conf, String field) {
        JsonNode n = conf.get(field);
        if (n == null || n.isNull()) {
            return null;
        }
        if (!n.isTextual()) {
            throw new IllegalArgumentException(field + " must be a string");
        }
        return n.asText();
    }

    /** An integer field, or {@code dflt}. */
    static int integer(JsonNode conf, String field, int dflt) {
        JsonNode n = conf.get(field);
        if (n == null || n.isNull()) {
            return dflt;
        }
        if (!n.canConvertToInt()) {
            throw new IllegalArgumentException(field + " must be an integer");
        }
        return n.asInt();
    }
}
