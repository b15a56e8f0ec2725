package dev.ferrogate.runner.internal;

import static org.junit.jupiter.api.Assertions.assertArrayEquals;
import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.flatbuffers.FlatBufferBuilder;
import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.Request;
import dev.ferrogate.plugin.Response;
import dev.ferrogate.protocol.A6.TextEntry;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.HexFormat;
import java.util.List;
import java.util.concurrent.atomic.AtomicReference;
import org.junit.jupiter.api.Test;

/**
 * The runner's replies, byte for byte, against the golden vectors written by the Rust encoder
 * (runner-protocol/vectors), with the golden requests as input, over a scripted connection.
 */
class GoldenRepliesTest {

    private static Path vectors() {
        String base = System.getProperty("basedir", System.getProperty("user.dir"));
        return Path.of(base).resolve("../../runner-protocol/vectors").toAbsolutePath().normalize();
    }

    private static byte[] vector(String name) throws IOException {
        return Files.readAllBytes(vectors().resolve(name + ".bin"));
    }

    private static void assertFrame(String vector, byte[] actual) throws IOException {
        byte[] want = vector(vector);
        assertArrayEquals(want, actual, () -> vector + "\n golden: " + HexFormat.of().formatHex(want)
            + "\n runner: " + HexFormat.of().formatHex(actual));
    }

    private static final java.util.concurrent.atomic.AtomicLong VERSION = new java.util.concurrent.atomic.AtomicLong();

    /** A prepare frame under a fresh key (a repeated key with the same conf would reuse its token). */
    private static byte[] prepare(String... nameValues) {
        FlatBufferBuilder b = new FlatBufferBuilder(128);
        int[] offs = new int[nameValues.length / 2];
        for (int i = 0; i < offs.length; i++) {
            int n = b.createString(nameValues[2 * i]);
            int v = b.createString(nameValues[2 * i + 1]);
            offs[i] = TextEntry.createTextEntry(b, n, v);
        }
        int conf = dev.ferrogate.protocol.A6.PrepareConf.Req.createConfVector(b, offs);
        int key = b.createString("route#1#ext-plugin-pre-req#" + VERSION.incrementAndGet());
        b.finish(dev.ferrogate.protocol.A6.PrepareConf.Req.createReq(b, conf, key));
        return MemChannel.frame(1, b.sizedByteArray());
    }

    private static byte[] request(long id, long token) {
        FlatBufferBuilder b = new FlatBufferBuilder(128);
        int path = b.createString("/");
        b.finish(dev.ferrogate.protocol.A6.HTTPReqCall.Req.createReq(b, id, 0, 0, path, 0, 0, token));
        return MemChannel.frame(2, b.sizedByteArray());
    }

    private static MemChannel run(List<Plugin<?>> plugins, byte[]... input) {
        MemChannel ch = new MemChannel(input);
        new Connection(ch, new Registry(plugins), new ConfCache(60_000_000_000L, System::nanoTime), 5_000_000_000L).run();
        return ch;
    }

    /** A plugin from a lambda. */
    record Fn(String name, Filter f) implements Plugin<String> {
        interface Filter {
            void apply(Request req, Response resp);
        }

        @Override
        public String parseConf(String conf) {
            return conf;
        }

        @Override
        public void filter(String conf, Request request, Response response) {
            f.apply(request, response);
        }
    }

    @Test
    void errorFramesAreTheGoldenOnes() throws IOException {
        assertFrame("error_bad_request", ErrorFrames.BAD_REQUEST);
        assertFrame("error_service_unavailable", ErrorFrames.SERVICE_UNAVAILABLE);
        assertFrame("error_conf_token_not_found", ErrorFrames.CONF_TOKEN_NOT_FOUND);
    }

    @Test
    void readsTheGoldenRequestAndAnswersTheGoldenStop() throws IOException {
        AtomicReference<String> seen = new AtomicReference<>();
        Plugin<?> stop = new Fn("stop", (req, resp) -> {
            seen.set(req.id() + " " + req.method() + " " + req.path() + " " + req.sourceIp() + " " + req.args() + " "
                + req.headers() + " " + req.header("X-MULTI") + " " + req.argValues("a"));
            resp.setStatus(403).addHeader("x-reason", "denied").removeHeader("x-gone").setBody("{\"message\":\"no\"}");
        });
        MemChannel ch = run(List.of(stop), prepare("stop", ""), prepare("stop", ""), prepare("stop", ""), vector("http_request"));
        List<byte[]> out = ch.frames();
        assertEquals(4, out.size(), "one reply per call");
        assertEquals("1 GET /hello/world 127.0.0.1 [Field[name=flag, value=null], Field[name=k, value=], "
            + "Field[name=a, value=1], Field[name=a, value=2]] [Field[name=host, value=api.test], Field[name=accept, value=*/*], "
            + "Field[name=x-multi, value=1], Field[name=x-multi, value=2]] 1 [1, 2]", seen.get());
        assertFrame("request_reply_stop", out.get(3));
        assertEquals(4, ch.writeCalls, "each frame in one write");
    }

    @Test
    void answersTheGoldenRewrite() throws IOException {
        Plugin<?> rw = new Fn("rw", (req, resp) -> {
            req.setPath("/new/path");
            req.setHeader("x-add", "1");
            req.removeHeader("x-remove");
            req.setArg("page", "2");
            req.removeArg("debug");
            resp.setHeader("x-resp", "yes");
            req.setBody("new body");
        });
        MemChannel ch = run(List.of(rw), prepare("rw", ""), request(3, 1));
        assertFrame("request_reply_rewrite", ch.frames().get(1));
    }

    @Test
    void asksTheGoldenVarQuestionThenContinues() throws IOException {
        AtomicReference<String> got = new AtomicReference<>();
        Plugin<?> var = new Fn("var", (req, resp) -> got.set(req.var("remote_addr")));
        MemChannel ch = run(List.of(var), prepare("var", ""), prepare("var", ""), prepare("var", ""),
            vector("http_request"), vector("extra_info_answer"));
        List<byte[]> out = ch.frames();
        assertFrame("extra_info_var", out.get(3));
        assertFrame("request_reply_continue", out.get(4));
        assertEquals(5, out.size());
    }

    @Test
    void theFortySecondPrepareGetsTheGoldenToken() throws IOException {
        byte[][] in = new byte[42][];
        for (int i = 0; i < in.length; i++) {
            in[i] = prepare();
        }
        List<byte[]> out = run(List.of(), in).frames();
        assertFrame("conf_token", out.get(41));
    }

    @Test
    void anUnchangedResponseIsTheGoldenKeep() throws IOException {
        FlatBufferBuilder b = new FlatBufferBuilder(64);
        b.finish(dev.ferrogate.protocol.A6.HTTPRespCall.Req.createReq(b, 8, 200, 0, 1));
        List<byte[]> out = run(List.of(new Fn("noop", (req, resp) -> { })), prepare("noop", ""),
            MemChannel.frame(4, b.sizedByteArray())).frames();
        assertFrame("response_reply_keep", out.get(1));
    }

    @Test
    void manyVarQuestionsGoOutInOneWriteAndAnswersComeBackInOrder() throws IOException {
        String[] names = new String[3000];
        for (int i = 0; i < names.length; i++) {
            names[i] = "var_" + i + "_" + "x".repeat(400);
        }
        AtomicReference<java.util.Map<String, String>> got = new AtomicReference<>();
        Plugin<?> many = new Fn("many", (req, resp) -> got.set(req.vars(names)));
        byte[][] in = new byte[2 + names.length][];
        in[0] = prepare("many", "");
        in[1] = request(5, 1);
        for (int i = 0; i < names.length; i++) {
            FlatBufferBuilder b = new FlatBufferBuilder(64);
            int r = b.createByteVector(String.valueOf(i).getBytes(java.nio.charset.StandardCharsets.UTF_8));
            b.finish(dev.ferrogate.protocol.A6.ExtraInfo.Resp.createResp(b, r));
            in[2 + i] = MemChannel.frame(3, b.sizedByteArray());
        }
        MemChannel ch = run(List.of(many), in);
        List<byte[]> out = ch.frames();
        assertEquals(2 + names.length, out.size());
        assertEquals(3, ch.writeCalls, "prepare reply, every question at once, the call's reply");
        for (int i = 0; i < names.length; i++) {
            assertEquals(String.valueOf(i), got.get().get(names[i]));
        }
        assertEquals(2, out.get(out.size() - 1)[0], "the call's reply last");
    }
}
