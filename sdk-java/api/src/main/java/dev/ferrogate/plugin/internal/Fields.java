package dev.ferrogate.plugin.internal;

import dev.ferrogate.plugin.Field;
import java.net.InetAddress;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/** Helpers on entry lists. */
public final class Fields {
    private Fields() {
    }

    public static boolean sameName(String a, String b, boolean ignoreCase) {
        return ignoreCase ? a.equalsIgnoreCase(b) : a.equals(b);
    }

    /** Removes every entry of that name. */
    public static void removeAll(List<Field> list, String name, boolean ignoreCase) {
        list.removeIf(f -> sameName(f.name(), name, ignoreCase));
    }

    public static boolean contains(List<Field> list, String name, boolean ignoreCase) {
        for (int i = 0, n = list.size(); i < n; i++) {
            if (sameName(list.get(i).name(), name, ignoreCase)) {
                return true;
            }
        }
        return false;
    }

    public static String first(List<Field> list, String name, boolean ignoreCase) {
        for (int i = 0, n = list.size(); i < n; i++) {
            Field f = list.get(i);
            if (sameName(f.name(), name, ignoreCase)) {
                return f.value();
            }
        }
        return null;
    }

    public static List<String> values(List<Field> list, String name, boolean ignoreCase) {
        List<String> out = new ArrayList<>(2);
        for (int i = 0, n = list.size(); i < n; i++) {
            Field f = list.get(i);
            if (sameName(f.name(), name, ignoreCase)) {
                out.add(f.value());
            }
        }
        return out;
    }

    /**
     * The gateway's rule for request header rewrites applied to {@code base}: each rewrite entry
     * replaces every value of its name (last one wins), an entry without value deletes.
     */
    public static List<Field> applyHeaderRewrites(List<Field> base, List<Field> rewrites) {
        if (rewrites.isEmpty()) {
            return base;
        }
        List<Field> out = new ArrayList<>(base.size() + rewrites.size());
        for (Field f : base) {
            String last = null;
            boolean rewritten = false;
            for (Field r : rewrites) {
                if (r.name().equalsIgnoreCase(f.name())) {
                    rewritten = true;
                    last = r.value();
                }
            }
            if (!rewritten) {
                out.add(f);
            } else if (last != null && !contains(out, f.name(), true)) {
                out.add(new Field(f.name(), last));
            }
        }
        for (Field r : rewrites) {
            if (!contains(base, r.name(), true) && !contains(out, r.name(), true)) {
                String last = null;
                for (Field x : rewrites) {
                    if (x.name().equalsIgnoreCase(r.name())) {
                        last = x.value();
                    }
                }
                if (last != null) {
                    out.add(new Field(r.name().toLowerCase(java.util.Locale.ROOT), last));
                }
            }
        }
        return out;
    }

    /**
     * The gateway's rule for argument rewrites applied to {@code base}: an entry without value
     * deletes the name; for a name with values the first entry replaces, later ones append.
     */
    public static List<Field> applyArgRewrites(List<Field> base, List<Field> rewrites) {
        if (rewrites.isEmpty()) {
            return base;
        }
        List<Field> out = new ArrayList<>(base);
        List<String> replaced = new ArrayList<>();
        for (Field r : rewrites) {
            if (r.value() == null) {
                removeAll(out, r.name(), false);
                replaced.remove(r.name());
            } else if (!replaced.contains(r.name())) {
                int at = -1;
                for (int i = 0; i < out.size(); i++) {
                    if (out.get(i).name().equals(r.name())) {
                        at = i;
                        break;
                    }
                }
                removeAll(out, r.name(), false);
                if (at < 0 || at > out.size()) {
                    out.add(r);
                } else {
                    out.add(at, r);
                }
                replaced.add(r.name());
            } else {
                out.add(r);
            }
        }
        return out;
    }

    /** The textual form of a raw 4- or 16-byte address ("" for anything else). */
    public static String ipText(byte[] raw) {
        if (raw.length != 4 && raw.length != 16) {
            return "";
        }
        try {
            String s = InetAddress.getByAddress(raw).getHostAddress();
            return raw.length == 16 ? compressIpv6(s) : s;
        } catch (UnknownHostException e) {
            return "";
        }
    }

    /** Java prints "0:0:0:0:0:0:0:1"; the usual form is "::1" (RFC 5952: longest zero run). */
    static String compressIpv6(String full) {
        String[] parts = full.split(":", -1);
        if (parts.length != 8) {
            return full;
        }
        int bestStart = -1;
        int bestLen = 0;
        for (int i = 0; i < 8; ) {
            if (parts[i].equals("0")) {
                int j = i;
                while (j < 8 && parts[j].equals("0")) {
                    j++;
                }
                if (j - i > bestLen && j - i >= 2) {
                    bestStart = i;
                    bestLen = j - i;
                }
                i = j;
            } else {
                i++;
            }
        }
        if (bestStart < 0) {
            return full;
        }
        StringBuilder sb = new StringBuilder();
        for (int i = 0; i < bestStart; i++) {
            sb.append(parts[i]).append(i + 1 < bestStart ? ":" : "");
        }
        sb.append("::");
        for (int i = bestStart + bestLen; i < 8; i++) {
            sb.append(parts[i]).append(i + 1 < 8 ? ":" : "");
        }
        return sb.toString();
    }

    /** Decodes variable answers in order. */
    public static Map<String, String> varMap(String[] names, byte[][] values) {
        Map<String, String> out = new LinkedHashMap<>();
        for (int i = 0; i < names.length; i++) {
            out.put(names[i], values[i] == null ? null : new String(values[i], java.nio.charset.StandardCharsets.UTF_8));
        }
        return out;
    }

    public static String requireName(String name) {
        Objects.requireNonNull(name, "name");
        if (name.isEmpty()) {
            throw new IllegalArgumentException("empty name");
        }
        return name;
    }
}
