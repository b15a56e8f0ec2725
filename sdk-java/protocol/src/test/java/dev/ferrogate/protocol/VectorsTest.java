package dev.ferrogate.protocol;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotNull;
import static org.junit.jupiter.api.Assertions.assertTrue;
import static org.junit.jupiter.api.Assertions.fail;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.JsonNodeFactory;
import com.fasterxml.jackson.databind.node.ObjectNode;
import com.google.flatbuffers.FlatBufferBuilder;
import dev.ferrogate.protocol.A6.Method;
import dev.ferrogate.protocol.A6.TextEntry;
import dev.ferrogate.protocol.A6.Err.Code;
import dev.ferrogate.protocol.A6.ExtraInfo.Info;
import dev.ferrogate.protocol.A6.ExtraInfo.ReqBody;
import dev.ferrogate.protocol.A6.ExtraInfo.RespBody;
import dev.ferrogate.protocol.A6.ExtraInfo.Var;
import dev.ferrogate.protocol.A6.HTTPReqCall.Action;
import dev.ferrogate.protocol.A6.HTTPReqCall.Rewrite;
import dev.ferrogate.protocol.A6.HTTPReqCall.Stop;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.charset.CharacterCodingException;
import java.nio.charset.CodingErrorAction;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.io.InputStream;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.HexFormat;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.function.Function;
import java.util.zip.GZIPInputStream;
import org.junit.jupiter.api.DynamicTest;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.TestFactory;

/**
 * The golden vectors of the runner protocol (runner-protocol/vectors, written by the Rust side).
 *
 * <p>For every manifest entry: the frame header (type byte, 24-bit big-endian length) matches the
 * file; the payload decoded with the generated bindings equals the manifest's {@code message}; the
 * message built from the manifest with {@link FlatBufferBuilder} decodes to the same content, and
 * where {@code exact_bytes} is true it is byte for byte the Rust encoder's payload.
 *
 * <p>A file named {@code *.gz} holds its frame gzip-compressed (the 16 MiB frame at the size limit).
 *
 * <p>Decoded content is rendered in the manifest's own JSON shape (externally tagged kinds, byte
 * strings as JSON strings when UTF-8 and {@code {"hex": ...}} otherwise, or {@code {"hex": "61",
 * "repeat": n}} for a run of at least {@value #RUN_THRESHOLD} copies of one byte, absent values as
 * null) and compared as JSON trees. Strings are always read as raw bytes ({@code ...AsByteBuffer()}), never
 * through {@code String}. An absent vector reads as empty, except a text entry's value, the Rewrite
 * path and the ExtraInfo answer, where absent (null) and empty ("") differ.
 */
class VectorsTest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final JsonNodeFactory NODES = JsonNodeFactory.instance;

    /** The shortest run of one byte written as {"hex": .., "repeat": n} (as byte_text.rs does). */
    static final int RUN_THRESHOLD = 1024;

    /** The largest frame payload (24-bit length); no byte string is longer. */
    private static final int MAX_PAYLOAD = 0xFF_FFFF;

    private static final String[] ERROR_CODES = {"BadRequest", "ServiceUnavailable", "ConfTokenNotFound"};

    private static Path vectorsDir() {
        // Surefire sets `basedir` to the module directory (sdk-java/protocol); fall back to the cwd.
        String base = System.getProperty("basedir", System.getProperty("user.dir"));
        Path dir = Paths.get(base).resolve("../../runner-protocol/vectors").toAbsolutePath().normalize();
        assertTrue(Files.isDirectory(dir), "no vectors directory at " + dir);
        return dir;
    }

    private static JsonNode manifest() throws IOException {
        return JSON.readTree(vectorsDir().resolve("manifest.json").toFile());
    }

    @Test
    void manifestCoversBothDirectionsAndEveryType() throws IOException {
        JsonNode vectors = manifest().get("vectors");
        assertNotNull(vectors, "manifest has no `vectors`");
        boolean[][] seen = new boolean[2][5];
        for (JsonNode v : vectors) {
            int dir = v.get("direction").asText().equals("to_runner") ? 0 : 1;
            seen[dir][v.get("type").asInt()] = true;
        }
        for (int t = 1; t <= 4; t++) {
            assertTrue(seen[0][t], "no to_runner vector of type " + t);
        }
        for (int t = 0; t <= 4; t++) {
            assertTrue(seen[1][t], "no to_gateway vector of type " + t);
        }
    }

    @TestFactory
    List<DynamicTest> goldenVectors() throws IOException {
        Path dir = vectorsDir();
        List<DynamicTest> tests = new ArrayList<>();
        for (JsonNode v : manifest().get("vectors")) {
            tests.add(DynamicTest.dynamicTest(v.get("name").asText(), () -> check(dir, v)));
        }
        assertFalse(tests.isEmpty(), "manifest lists no vectors");
        return tests;
    }

    private static void check(Path dir, JsonNode v) throws IOException {
        String direction = v.get("direction").asText();
        int type = v.get("type").asInt();
        boolean exact = v.get("exact_bytes").asBoolean();
        JsonNode expected = v.get("message");

        byte[] frame = readFrame(dir, v.get("file").asText());
        assertTrue(frame.length >= 4, "frame shorter than its header");
        assertEquals(type, frame[0] & 0xFF, "type byte");
        int length = ((frame[1] & 0xFF) << 16) | ((frame[2] & 0xFF) << 8) | (frame[3] & 0xFF);
        assertEquals(frame.length - 4, length, "24-bit big-endian payload length");
        byte[] payload = new byte[length];
        System.arraycopy(frame, 4, payload, 0, length);

        Function<ByteBuffer, JsonNode> decoder;
        Function<JsonNode, byte[]> encoder;
        switch (direction) {
            case "to_runner" -> {
                decoder = bb -> decodeToRunner(type, bb);
                encoder = VectorsTest::encodeToRunner;
            }
            case "to_gateway" -> {
                decoder = bb -> decodeToGateway(type, bb);
                encoder = VectorsTest::encodeToGateway;
            }
            default -> throw new AssertionError("unknown direction " + direction);
        }

        // 1. The Rust-written payload decodes to the manifest's content.
        assertJsonEquals(expected, decoder.apply(ByteBuffer.wrap(payload)), "decoded golden payload");

        // 2. Our own encoding of the manifest's content decodes to the same content.
        byte[] ours = encoder.apply(expected);
        assertJsonEquals(expected, decoder.apply(ByteBuffer.wrap(ours)), "decoded Java-built payload");

        // 3. Byte equality where the vector promises it. The builders below follow the Rust encoder:
        // children created in field order (strings/vectors of a text entry name then value, entry
        // tables then the vector of them), tables through the generated create* helpers (fields
        // added largest first, as flatc's Rust `create` does), empty vectors and empty key/path
        // strings not written, default scalars omitted (forceDefaults is false by default), and
        // finish() with no size prefix and no file identifier. A vector with exact_bytes false
        // carries present-but-empty vectors that an omitting encoder cannot reproduce, so only its
        // content is compared (steps 1 and 2).
        if (exact) {
            assertArrayEquals(payload, ours, () -> "payload bytes\n golden: " + clipHex(payload) + "\n java:   " + clipHex(ours));
        }
    }

    /** A vector file's frame, gunzipped when the name ends in ".gz". */
    private static byte[] readFrame(Path dir, String file) throws IOException {
        if (!file.endsWith(".gz")) {
            return Files.readAllBytes(dir.resolve(file));
        }
        try (InputStream in = new GZIPInputStream(Files.newInputStream(dir.resolve(file)), 1 << 16)) {
            return in.readAllBytes();
        }
    }

    @Test
    void manifestListsEveryVectorFile() throws IOException {
        List<String> listed = new ArrayList<>();
        for (JsonNode v : manifest().get("vectors")) {
            listed.add(v.get("file").asText());
        }
        try (var files = Files.list(vectorsDir())) {
            files.map(p -> p.getFileName().toString())
                .filter(n -> n.endsWith(".bin") || n.endsWith(".bin.gz"))
                .forEach(n -> assertTrue(listed.contains(n), n + " is not in the manifest"));
        }
    }

    @Test
    void byteStringForms() {
        byte[] run = new byte[RUN_THRESHOLD];
        Arrays.fill(run, (byte) 'a');
        assertEquals(NODES.textNode("a".repeat(RUN_THRESHOLD - 1)), byteText(Arrays.copyOf(run, RUN_THRESHOLD - 1)));
        ObjectNode runForm = NODES.objectNode().put("hex", "61").put("repeat", RUN_THRESHOLD);
        assertEquals(runForm, byteText(run));
        assertArrayEquals(run, bytesOf(runForm));
        byte[] binary = new byte[5000];
        Arrays.fill(binary, (byte) 0xff);
        assertEquals(NODES.objectNode().put("hex", "ff").put("repeat", 5000), byteText(binary));
        assertEquals(NODES.objectNode().put("hex", "ff00"), byteText(new byte[] {(byte) 0xff, 0}));
        assertArrayEquals(new byte[] {1, 2, 1, 2, 1, 2}, bytesOf(NODES.objectNode().put("hex", "0102").put("repeat", 3)));
        ObjectNode tooLong = NODES.objectNode().put("hex", "0000").put("repeat", MAX_PAYLOAD / 2 + 1);
        try {
            bytesOf(tooLong);
            fail("a run longer than a frame was accepted");
        } catch (AssertionError expected) {
            // refused
        }
    }

    // ---------------------------------------------------------------- decoding (to plain JSON)

    private static JsonNode decodeToRunner(int type, ByteBuffer bb) {
        ObjectNode out = NODES.objectNode();
        switch (type) {
            case 1 -> {
                var m = dev.ferrogate.protocol.A6.PrepareConf.Req.getRootAsReq(bb);
                ObjectNode o = out.putObject("PrepareConf");
                o.set("conf", entries(m.confLength(), m::conf));
                o.set("key", bytesOrEmpty(m.keyAsByteBuffer()));
            }
            case 2 -> {
                var m = dev.ferrogate.protocol.A6.HTTPReqCall.Req.getRootAsReq(bb);
                ObjectNode o = out.putObject("HttpRequest");
                o.put("id", m.id());
                o.set("src_ip", bytesOrEmpty(m.srcIpAsByteBuffer()));
                o.put("method", Method.name(m.method()));
                o.set("path", bytesOrEmpty(m.pathAsByteBuffer()));
                o.set("args", entries(m.argsLength(), m::args));
                o.set("headers", entries(m.headersLength(), m::headers));
                o.put("conf_token", m.confToken());
            }
            case 3 -> {
                var m = dev.ferrogate.protocol.A6.ExtraInfo.Resp.getRootAsResp(bb);
                out.set("ExtraInfoAnswer", bytesOrNull(m.resultAsByteBuffer()));
            }
            case 4 -> {
                var m = dev.ferrogate.protocol.A6.HTTPRespCall.Req.getRootAsReq(bb);
                ObjectNode o = out.putObject("HttpResponse");
                o.put("id", m.id());
                o.put("status", m.status());
                o.set("headers", entries(m.headersLength(), m::headers));
                o.put("conf_token", m.confToken());
            }
            default -> throw new AssertionError("type " + type + " does not travel to the runner");
        }
        return out;
    }

    private static JsonNode decodeToGateway(int type, ByteBuffer bb) {
        ObjectNode out = NODES.objectNode();
        switch (type) {
            case 0 -> {
                var m = dev.ferrogate.protocol.A6.Err.Resp.getRootAsResp(bb);
                int code = m.code();
                assertTrue(code >= 0 && code < ERROR_CODES.length, "unknown error code " + code);
                assertEquals(Code.name(code).replace("_", ""), ERROR_CODES[code].toUpperCase());
                out.put("Error", ERROR_CODES[code]);
            }
            case 1 -> {
                var m = dev.ferrogate.protocol.A6.PrepareConf.Resp.getRootAsResp(bb);
                out.put("ConfToken", m.confToken());
            }
            case 2 -> {
                var m = dev.ferrogate.protocol.A6.HTTPReqCall.Resp.getRootAsResp(bb);
                ObjectNode o = out.putObject("HttpRequestReply");
                o.put("id", m.id());
                switch (m.actionType()) {
                    case Action.NONE -> o.putNull("action");
                    case Action.Stop -> {
                        Stop s = (Stop) m.action(new Stop());
                        assertNotNull(s, "Stop action without its table");
                        ObjectNode a = o.putObject("action").putObject("Stop");
                        a.put("status", s.status());
                        a.set("headers", entries(s.headersLength(), s::headers));
                        a.set("body", bytesOrEmpty(s.bodyAsByteBuffer()));
                    }
                    case Action.Rewrite -> {
                        Rewrite r = (Rewrite) m.action(new Rewrite());
                        assertNotNull(r, "Rewrite action without its table");
                        ObjectNode a = o.putObject("action").putObject("Rewrite");
                        a.set("path", bytesOrNull(r.pathAsByteBuffer()));
                        a.set("headers", entries(r.headersLength(), r::headers));
                        a.set("args", entries(r.argsLength(), r::args));
                        a.set("resp_headers", entries(r.respHeadersLength(), r::respHeaders));
                        a.set("body", bytesOrEmpty(r.bodyAsByteBuffer()));
                    }
                    default -> fail("unknown action type " + m.actionType());
                }
            }
            case 3 -> {
                var m = dev.ferrogate.protocol.A6.ExtraInfo.Req.getRootAsReq(bb);
                switch (m.infoType()) {
                    case Info.Var -> {
                        Var var = (Var) m.info(new Var());
                        ByteBuffer name = var == null ? null : var.nameAsByteBuffer();
                        out.putObject("ExtraInfo").set("Var", bytesOrEmpty(name));
                    }
                    case Info.ReqBody -> out.put("ExtraInfo", "ReqBody");
                    case Info.RespBody -> out.put("ExtraInfo", "RespBody");
                    default -> fail("unknown extra info type " + m.infoType());
                }
            }
            case 4 -> {
                var m = dev.ferrogate.protocol.A6.HTTPRespCall.Resp.getRootAsResp(bb);
                ObjectNode o = out.putObject("HttpResponseReply");
                o.put("id", m.id());
                o.put("status", m.status());
                o.set("headers", entries(m.headersLength(), m::headers));
                o.set("body", bytesOrEmpty(m.bodyAsByteBuffer()));
            }
            default -> throw new AssertionError("type " + type + " does not travel to the gateway");
        }
        return out;
    }

    private interface EntryAt {
        TextEntry get(int i);
    }

    /** A vector of text entries (absent reads as empty); an entry's value keeps absent vs empty. */
    private static ArrayNode entries(int length, EntryAt at) {
        ArrayNode list = NODES.arrayNode();
        for (int i = 0; i < length; i++) {
            TextEntry e = at.get(i);
            ObjectNode o = list.addObject();
            o.set("name", bytesOrEmpty(e.nameAsByteBuffer()));
            o.set("value", bytesOrNull(e.valueAsByteBuffer()));
        }
        return list;
    }

    private static byte[] raw(ByteBuffer view) {
        ByteBuffer b = view.duplicate();
        byte[] out = new byte[b.remaining()];
        b.get(out);
        return out;
    }

    private static JsonNode bytesOrEmpty(ByteBuffer view) {
        return byteText(view == null ? new byte[0] : raw(view));
    }

    private static JsonNode bytesOrNull(ByteBuffer view) {
        return view == null ? NODES.nullNode() : byteText(raw(view));
    }

    /**
     * The manifest's byte-string form: {"hex": "61", "repeat": n} for a run of at least
     * {@link #RUN_THRESHOLD} copies of one byte, a JSON string when valid UTF-8, else {"hex": "..."}.
     */
    private static JsonNode byteText(byte[] bytes) {
        // A run equals itself shifted by one byte.
        if (bytes.length >= RUN_THRESHOLD
            && Arrays.equals(bytes, 1, bytes.length, bytes, 0, bytes.length - 1)) {
            ObjectNode o = NODES.objectNode();
            o.put("hex", hex(Arrays.copyOf(bytes, 1)));
            o.put("repeat", bytes.length);
            return o;
        }
        try {
            String s = StandardCharsets.UTF_8.newDecoder()
                .onMalformedInput(CodingErrorAction.REPORT)
                .onUnmappableCharacter(CodingErrorAction.REPORT)
                .decode(ByteBuffer.wrap(bytes))
                .toString();
            return NODES.textNode(s);
        } catch (CharacterCodingException e) {
            ObjectNode o = NODES.objectNode();
            o.put("hex", hex(bytes));
            return o;
        }
    }

    private static String hex(byte[] bytes) {
        return HexFormat.of().formatHex(bytes);
    }

    /** Hex for a failure message, shortened (the largest vector is 16 MiB). */
    private static String clipHex(byte[] bytes) {
        int shown = Math.min(bytes.length, 2048);
        String out = HexFormat.of().formatHex(bytes, 0, shown);
        return shown == bytes.length ? out : out + "... (" + bytes.length + " bytes in all)";
    }

    // ---------------------------------------------------------------- encoding (from the manifest)

    /** Manifest byte string to raw bytes; null for a JSON null. */
    private static byte[] bytesOf(JsonNode n) {
        if (n == null || n.isNull()) {
            return null;
        }
        if (n.isTextual()) {
            return n.asText().getBytes(StandardCharsets.UTF_8);
        }
        if (n.isObject() && n.has("hex") && n.has("repeat")) {
            byte[] pattern = HexFormat.of().parseHex(n.get("hex").asText());
            long count = n.get("repeat").asLong(-1);
            assertTrue(n.size() == 2 && count >= 0 && pattern.length * count <= MAX_PAYLOAD,
                "not a run of at most " + MAX_PAYLOAD + " bytes: " + n);
            byte[] out = new byte[(int) (pattern.length * count)];
            for (int i = 0; i < out.length; i += pattern.length) {
                System.arraycopy(pattern, 0, out, i, pattern.length);
            }
            return out;
        }
        if (n.isObject() && n.has("hex") && n.size() == 1) {
            return HexFormat.of().parseHex(n.get("hex").asText());
        }
        throw new AssertionError("not a byte string: " + n);
    }

    private static Map.Entry<String, JsonNode> onlyField(JsonNode tagged) {
        assertTrue(tagged.isObject() && tagged.size() == 1, "not externally tagged: " + tagged);
        Iterator<Map.Entry<String, JsonNode>> it = tagged.fields();
        return it.next();
    }

    /** A FlatBuffers string holding these raw bytes (length, bytes, NUL). */
    private static int string(FlatBufferBuilder b, byte[] bytes) {
        return b.createString(ByteBuffer.wrap(bytes));
    }

    /** Like the Rust encoder: an empty key or path is not written. */
    private static int stringOpt(FlatBufferBuilder b, byte[] bytes) {
        return bytes.length == 0 ? 0 : string(b, bytes);
    }

    private static int byteVector(FlatBufferBuilder b, byte[] bytes) {
        return bytes.length == 0 ? 0 : b.createByteVector(bytes);
    }

    /** Text entries in order (name then value, then the table), then the vector; 0 when empty. */
    private static int entries(FlatBufferBuilder b, JsonNode list) {
        if (list == null || list.isNull() || list.isEmpty()) {
            return 0;
        }
        int[] offsets = new int[list.size()];
        for (int i = 0; i < offsets.length; i++) {
            JsonNode e = list.get(i);
            int name = string(b, bytesOf(e.get("name")));
            byte[] valueBytes = bytesOf(e.get("value"));
            int value = valueBytes == null ? 0 : string(b, valueBytes);
            offsets[i] = TextEntry.createTextEntry(b, name, value);
        }
        // All A6 entry vectors have the same layout; the generated helpers are interchangeable.
        return dev.ferrogate.protocol.A6.PrepareConf.Req.createConfVector(b, offsets);
    }

    private static byte[] encodeToRunner(JsonNode message) {
        Map.Entry<String, JsonNode> kind = onlyField(message);
        JsonNode m = kind.getValue();
        FlatBufferBuilder b = new FlatBufferBuilder(256);
        int root;
        switch (kind.getKey()) {
            case "PrepareConf" -> {
                int conf = entries(b, m.get("conf"));
                int key = stringOpt(b, bytesOf(m.get("key")));
                root = dev.ferrogate.protocol.A6.PrepareConf.Req.createReq(b, conf, key);
            }
            case "HttpRequest" -> {
                int srcIp = byteVector(b, bytesOf(m.get("src_ip")));
                int path = stringOpt(b, bytesOf(m.get("path")));
                int args = entries(b, m.get("args"));
                int headers = entries(b, m.get("headers"));
                root = dev.ferrogate.protocol.A6.HTTPReqCall.Req.createReq(
                    b, m.get("id").asLong(), srcIp, method(m.get("method").asText()), path, args,
                    headers, m.get("conf_token").asLong());
            }
            case "ExtraInfoAnswer" -> {
                byte[] result = bytesOf(m);
                // Present-but-empty differs from absent here: an empty answer is still written.
                int r = result == null ? 0 : b.createByteVector(result);
                root = dev.ferrogate.protocol.A6.ExtraInfo.Resp.createResp(b, r);
            }
            case "HttpResponse" -> {
                int headers = entries(b, m.get("headers"));
                root = dev.ferrogate.protocol.A6.HTTPRespCall.Req.createReq(
                    b, m.get("id").asLong(), m.get("status").asInt(), headers, m.get("conf_token").asLong());
            }
            default -> throw new AssertionError("unknown to_runner kind " + kind.getKey());
        }
        b.finish(root);
        return b.sizedByteArray();
    }

    private static byte[] encodeToGateway(JsonNode message) {
        FlatBufferBuilder b = new FlatBufferBuilder(256);
        int root;
        Map.Entry<String, JsonNode> kind = onlyField(message);
        JsonNode m = kind.getValue();
        switch (kind.getKey()) {
            case "Error" -> root = dev.ferrogate.protocol.A6.Err.Resp.createResp(b, errorCode(m.asText()));
            case "ConfToken" -> root = dev.ferrogate.protocol.A6.PrepareConf.Resp.createResp(b, m.asLong());
            case "HttpRequestReply" -> {
                byte actionType = Action.NONE;
                int action = 0;
                JsonNode a = m.get("action");
                if (a != null && !a.isNull()) {
                    Map.Entry<String, JsonNode> ak = onlyField(a);
                    JsonNode x = ak.getValue();
                    switch (ak.getKey()) {
                        case "Stop" -> {
                            int headers = entries(b, x.get("headers"));
                            int body = byteVector(b, bytesOf(x.get("body")));
                            action = Stop.createStop(b, x.get("status").asInt(), headers, body);
                            actionType = Action.Stop;
                        }
                        case "Rewrite" -> {
                            byte[] pathBytes = bytesOf(x.get("path"));
                            // Absent and empty paths differ: an empty path is written.
                            int path = pathBytes == null ? 0 : string(b, pathBytes);
                            int headers = entries(b, x.get("headers"));
                            int args = entries(b, x.get("args"));
                            int respHeaders = entries(b, x.get("resp_headers"));
                            int body = byteVector(b, bytesOf(x.get("body")));
                            action = Rewrite.createRewrite(b, path, headers, args, respHeaders, body);
                            actionType = Action.Rewrite;
                        }
                        default -> throw new AssertionError("unknown action " + ak.getKey());
                    }
                }
                root = dev.ferrogate.protocol.A6.HTTPReqCall.Resp.createResp(b, m.get("id").asLong(), actionType, action);
            }
            case "ExtraInfo" -> {
                byte infoType;
                int info;
                if (m.isTextual()) {
                    switch (m.asText()) {
                        case "ReqBody" -> {
                            ReqBody.startReqBody(b);
                            info = ReqBody.endReqBody(b);
                            infoType = Info.ReqBody;
                        }
                        case "RespBody" -> {
                            RespBody.startRespBody(b);
                            info = RespBody.endRespBody(b);
                            infoType = Info.RespBody;
                        }
                        default -> throw new AssertionError("unknown extra info " + m);
                    }
                } else {
                    Map.Entry<String, JsonNode> ik = onlyField(m);
                    assertEquals("Var", ik.getKey());
                    int name = string(b, bytesOf(ik.getValue()));
                    info = Var.createVar(b, name);
                    infoType = Info.Var;
                }
                root = dev.ferrogate.protocol.A6.ExtraInfo.Req.createReq(b, infoType, info);
            }
            case "HttpResponseReply" -> {
                int headers = entries(b, m.get("headers"));
                int body = byteVector(b, bytesOf(m.get("body")));
                root = dev.ferrogate.protocol.A6.HTTPRespCall.Resp.createResp(
                    b, m.get("id").asLong(), m.get("status").asInt(), headers, body);
            }
            default -> throw new AssertionError("unknown to_gateway kind " + kind.getKey());
        }
        b.finish(root);
        return b.sizedByteArray();
    }

    private static int method(String name) {
        for (int i = 0; i < Method.names.length; i++) {
            if (Method.names[i].equals(name)) {
                return i;
            }
        }
        throw new AssertionError("unknown method " + name);
    }

    private static int errorCode(String name) {
        for (int i = 0; i < ERROR_CODES.length; i++) {
            if (ERROR_CODES[i].equals(name)) {
                return i;
            }
        }
        throw new AssertionError("unknown error code " + name);
    }

    // ---------------------------------------------------------------- comparison

    private static String clip(String s) {
        return s.length() <= 4096 ? s : s.substring(0, 4096) + "... (" + s.length() + " chars in all)";
    }

    /** JSON equality with numbers compared by value (the manifest parses 42 as int, we build long). */
    private static void assertJsonEquals(JsonNode expected, JsonNode actual, String what) {
        try {
            JsonNode e = JSON.readTree(JSON.writeValueAsString(expected));
            JsonNode a = JSON.readTree(JSON.writeValueAsString(actual));
            // Byte strings are short here (a run of one byte is {"hex", "repeat"}), but a 16 MiB
            // value that is not a run would make a huge message: clip it.
            if (!e.equals(a)) {
                fail(what + "\n expected: " + clip(e.toString()) + "\n actual:   " + clip(a.toString()));
            }
        } catch (IOException ex) {
            throw new AssertionError(ex);
        }
    }
}
