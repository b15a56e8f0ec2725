package dev.ferrogate.plugin;

import java.util.Objects;

/**
 * One name/value entry of a header or query-argument list, in wire order.
 *
 * @param name  the name (header names arrive lower-cased from the gateway)
 * @param value the value; {@code null} for an entry without value (a query flag such as
 *              {@code ?debug}, or a deletion in a rewrite list)
 */
public record Field(String name, String value) {
    public Field {
        Objects.requireNonNull(name, "name");
    }

    /** A shorthand for {@code new Field(name, value)}. */
    public static Field of(String name, String value) {
        return new Field(name, value);
    }
}
