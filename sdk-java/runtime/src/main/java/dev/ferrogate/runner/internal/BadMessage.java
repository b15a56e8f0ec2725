package dev.ferrogate.runner.internal;

/** A payload that is not a well-formed message of the expected type (answered BAD_REQUEST). */
final class BadMessage extends RuntimeException {
    static final BadMessage INSTANCE = new BadMessage();

    private BadMessage() {
        super("malformed message", null, false, false);
    }
}
