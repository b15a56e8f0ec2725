package dev.ferrogate.runner.internal;

import dev.ferrogate.plugin.Field;
import java.nio.ByteBuffer;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.List;

/**
 * A bounds-checked reader of FlatBuffers tables in a received payload.
 *
 * <p>flatbuffers-java has no verifier, and its generated accessors decode strings as strict UTF-8.
 * Inbound messages are therefore read here: every offset is checked against the payload before
 * use (an out-of-range one throws {@link BadMessage}), vector lengths are checked before anything
 * is allocated for them, and strings are decoded leniently (invalid UTF-8 becomes U+FFFD). Field
 * slots are the schema's field order, as in the generated bindings.
 *
 * <p>The buffer must be a heap buffer, little-endian, holding the payload at [0, limit).
 */
final class Wire {
    private Wire() {
    }

    private static void check(ByteBuffer bb, long pos, long len) {
        if (pos < 0 || len < 0 || pos + len > bb.limit()) {
            throw BadMessage.INSTANCE;
        }
    }

    private static int u16(ByteBuffer bb, int pos) {
        check(bb, pos, 2);
        return bb.getShort(pos) & 0xFFFF;
    }

    private static int i32(ByteBuffer bb, int pos) {
        check(bb, pos, 4);
        return bb.getInt(pos);
    }

    /** The position of the root table, checked. */
    static int root(ByteBuffer bb) {
        int t = i32(bb, 0);
        table(bb, t);
        return t;
    }

    /** Checks a table header and its vtable. */
    static void table(ByteBuffer bb, int t) {
        check(bb, t, 4);
        long vt = (long) t - bb.getInt(t);
        check(bb, vt, 4);
        int vtSize = bb.getShort((int) vt) & 0xFFFF;
        int objSize = bb.getShort((int) vt + 2) & 0xFFFF;
        if (vtSize < 4 || (vtSize & 1) != 0 || objSize < 4) {
            throw BadMessage.INSTANCE;
        }
        check(bb, vt, vtSize);
        check(bb, t, objSize);
    }

    /** The absolute position of a field of a checked table, or 0 when absent. */
    static int field(ByteBuffer bb, int t, int slot, int size) {
        int vt = t - bb.getInt(t);
        int vtSize = bb.getShort(vt) & 0xFFFF;
        int vo = 4 + 2 * slot;
        if (vo >= vtSize) {
            return 0;
        }
        int o = bb.getShort(vt + vo) & 0xFFFF;
        if (o == 0) {
            return 0;
        }
        int objSize = bb.getShort(vt + 2) & 0xFFFF;
        if (o + size > objSize) {
            throw BadMessage.INSTANCE;
        }
        return t + o;
    }

    static long u32Field(ByteBuffer bb, int t, int slot) {
        int f = field(bb, t, slot, 4);
        return f == 0 ? 0 : bb.getInt(f) & 0xFFFFFFFFL;
    }

    static int u16Field(ByteBuffer bb, int t, int slot) {
        int f = field(bb, t, slot, 2);
        return f == 0 ? 0 : bb.getShort(f) & 0xFFFF;
    }

    static int u8Field(ByteBuffer bb, int t, int slot) {
        int f = field(bb, t, slot, 1);
        return f == 0 ? 0 : bb.get(f) & 0xFF;
    }

    /** Follows an offset field to a vector or string; returns its length position, or -1 if absent. */
    static int vector(ByteBuffer bb, int t, int slot, int elemSize) {
        int f = field(bb, t, slot, 4);
        if (f == 0) {
            return -1;
        }
        long v = f + (bb.getInt(f) & 0xFFFFFFFFL);
        check(bb, v, 4);
        int len = bb.getInt((int) v);
        check(bb, v + 4, (long) len * elemSize);
        return (int) v;
    }

    static int length(ByteBuffer bb, int v) {
        return bb.getInt(v);
    }

    /** A string or byte-vector field as bytes, or null when absent. */
    static byte[] bytes(ByteBuffer bb, int t, int slot) {
        int v = vector(bb, t, slot, 1);
        if (v < 0) {
            return null;
        }
        byte[] out = new byte[bb.getInt(v)];
        bb.get(v + 4, out);
        return out;
    }

    /** A string field decoded as lenient UTF-8, or null when absent. */
    static String string(ByteBuffer bb, int t, int slot) {
        int v = vector(bb, t, slot, 1);
        if (v < 0) {
            return null;
        }
        return new String(bb.array(), bb.arrayOffset() + v + 4, bb.getInt(v), StandardCharsets.UTF_8);
    }

    /** The table at element {@code i} of a checked vector of tables. */
    static int element(ByteBuffer bb, int v, int i) {
        int e = v + 4 + 4 * i;
        long t = e + (bb.getInt(e) & 0xFFFFFFFFL);
        if (t > Integer.MAX_VALUE) {
            throw BadMessage.INSTANCE;
        }
        table(bb, (int) t);
        return (int) t;
    }

    /** Checks every entry of a TextEntry vector field (names and values in bounds); returns its position or -1. */
    static int checkEntries(ByteBuffer bb, int t, int slot) {
        int v = vector(bb, t, slot, 4);
        if (v < 0) {
            return -1;
        }
        for (int i = 0, n = length(bb, v); i < n; i++) {
            int e = element(bb, v, i);
            vector(bb, e, 0, 1);
            vector(bb, e, 1, 1);
        }
        return v;
    }

    /** Decodes a checked TextEntry vector (from {@link #checkEntries}); absent name reads "". */
    static List<Field> entries(ByteBuffer bb, int v) {
        if (v < 0) {
            return List.of();
        }
        int n = length(bb, v);
        List<Field> out = new ArrayList<>(n);
        for (int i = 0; i < n; i++) {
            int e = element(bb, v, i);
            String name = string(bb, e, 0);
            out.add(new Field(name == null ? "" : name, string(bb, e, 1)));
        }
        return out;
    }

    /**
     * The first value of the entry named {@code lowerName} (ASCII case-insensitive) in a checked
     * TextEntry vector, compared on the bytes without decoding the other entries; null if none.
     */
    static String firstValue(ByteBuffer bb, int v, String lowerName) {
        if (v < 0) {
            return null;
        }
        int nameLen = lowerName.length();
        for (int i = 0, n = length(bb, v); i < n; i++) {
            int e = element(bb, v, i);
            int s = vector(bb, e, 0, 1);
            if (s < 0 || bb.getInt(s) != nameLen) {
                continue;
            }
            boolean same = true;
            for (int k = 0; k < nameLen; k++) {
                int c = bb.get(s + 4 + k) & 0xFF;
                if (c >= 'A' && c <= 'Z') {
                    c += 32;
                }
                if (c != lowerName.charAt(k)) {
                    same = false;
                    break;
                }
            }
            if (same) {
                return string(bb, e, 1);
            }
        }
        return null;
    }
}
