package dev.ferrogate.examples;

import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.ObjectMapper;

/** JSON confs into records; unknown fields are errors, so typos fail the prepare. */
final class Confs {
    private static final ObjectMapper MAPPER = new ObjectMapper()
        .enable(DeserializationFeature.FAIL_ON_UNKNOWN_PROPERTIES);

    private Confs() {
    }

    static <T> T parse(String conf, Class<T> type) throws Exception {
        return MAPPER.readValue(conf == null || conf.isBlank() ? "{}" : conf, type);
    }
}
