package dev.ferrogate.tests;

import static dev.ferrogate.tests.GatewayClient.bytesText;
import static dev.ferrogate.tests.GatewayClient.errorCode;
import static dev.ferrogate.tests.GatewayClient.fields;
import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNotEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.Request;
import dev.ferrogate.plugin.Response;
import dev.ferrogate.protocol.A6.Err.Code;
import dev.ferrogate.protocol.A6.ExtraInfo.Info;
import dev.ferrogate.protocol.A6.ExtraInfo.Var;
import dev.ferrogate.protocol.A6.HTTPReqCall.Action;
import dev.ferrogate.protocol.A6.HTTPReqCall.Rewrite;
import dev.ferrogate.protocol.A6.HTTPReqCall.Stop;
import dev.ferrogate.runner.Runner;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.AfterAll;
import org.junit.jupiter.api.BeforeAll;
import org.junit.jupiter.api.Test;

/**
 * The runner in-process on a real Unix socket, with the conformance plugins (found through
 * ServiceLoader, as in the jar) and a few test plugins, driven by {@link GatewayClient}.
 */
class RunnerE2ETest {
    private static final ObjectMapper JSON = new ObjectMapper();
    private static Path dir;
    private static Runner runner;

    /** Reads a variable from another thread, completing later (async + extra info off the connection thread). */
    static final class AsyncVar implements Plugin<String> {
        @Override
        public String name() {
            return "test-async-var";
        }

        @Override
        public String parseConf(String conf) {
            return conf;
        }

        @Override
        public CompletionStage<Void> filterAsync(String var, Request request, Response response) {
            return CompletableFuture.runAsync(() -> request.setHeader("x-var", String.valueOf(request.var(var))));
        }
    }

    /** Rejects its conf. */
    static final class BadConf implements Plugin<Object> {
        @Override
        public String name() {
            return "test-bad-conf";
        }

        @Override
        public Object parseConf(String conf) {
            throw new IllegalArgumentException("never valid");
        }
    }

    /** Never completes. */
    static final class Hang implements Plugin<String> {
        @Override
        public String name() {
            return "test-hang";
        }

        @Override
        public String parseConf(String conf) {
            return conf;
        }

        @Override
        public CompletionStage<Void> filterAsync(String conf, Request request, Response response) {
            return new CompletableFuture<>();
        }
    }

    /** Answers with a body of {@code conf} bytes. */
    static final class BigBody implements Plugin<Integer> {
        @Override
        public String name() {
            return "test-big-body";
        }

        @Override
        public Integer parseConf(String conf) {
            return Integer.parseInt(conf);
        }

        @Override
        public void filter(Integer size, Request request, Response response) {
            byte[] b = new byte[size];
            Arrays.fill(b, (byte) 'x');
            response.setBody(b);
        }
    }

    @BeforeAll
    static void start() throws IOException {
        dir = Files.createTempDirectory("fg-e2e");
        runner = Runner.builder()
            .socket(dir.resolve("r.sock"))
            .discoverPlugins(RunnerE2ETest.class.getClassLoader())
            .plugin(new AsyncVar())
            .plugin(new BadConf())
            .plugin(new Hang())
            .plugin(new BigBody())
            .callTimeout(Duration.ofMillis(500))
            .start();
    }

    @AfterAll
    static void stop() throws IOException {
        runner.close();
        assertFalse(Files.exists(dir.resolve("r.sock")), "socket removed on close");
        Files.deleteIfExists(dir);
    }

    private static GatewayClient client() throws IOException {
        return new GatewayClient(runner.socketPath());
    }

    private static dev.ferrogate.protocol.A6.HTTPReqCall.Resp reqReply(GatewayClient.Frame f) {
        assertEquals(2, f.type(), "request reply type");
        return dev.ferrogate.protocol.A6.HTTPReqCall.Resp.getRootAsResp(f.payload());
    }

    private static Stop stopOf(dev.ferrogate.protocol.A6.HTTPReqCall.Resp r) {
        assertEquals(Action.Stop, r.actionType());
        return (Stop) r.action(new Stop());
    }

    private static Rewrite rewriteOf(dev.ferrogate.protocol.A6.HTTPReqCall.Resp r) {
        assertEquals(Action.Rewrite, r.actionType());
        return (Rewrite) r.action(new Rewrite());
    }

    @Test
    void discoversTheConformancePlugins() {
        assertTrue(runner.pluginNames().containsAll(
            List.of("conf-stop", "conf-rewrite", "conf-echo", "conf-sleep", "conf-fail", "conf-response")));
    }

    @Test
    void prepareGivesDistinctNonZeroTokensAndExactlyOneReply() throws Exception {
        try (GatewayClient c = client()) {
            long a = c.prepareKeyed("route#1#ext-plugin-pre-req#1", "conf-stop", "{}");
            long b = c.prepareKeyed("route#1#ext-plugin-post-req#1", "conf-stop", "{}");
            assertNotEquals(0, a);
            assertNotEquals(a, b, "each key its own token, even for the same conf");
            assertFalse(c.pending(150), "nothing after the prepare reply");
            assertEquals(a, c.prepareKeyed("route#1#ext-plugin-pre-req#1", "conf-stop", "{}"), "same key and conf: same token");
            long changed = c.prepareKeyed("route#1#ext-plugin-pre-req#1", "conf-stop", "{\"status\":401}");
            assertNotEquals(a, changed, "same key, new conf: new token");
            try (GatewayClient other = client()) {
                other.sendRequest(new GatewayClient.Call(), changed);
                assertEquals(401, stopOf(reqReply(other.read())).status(), "a token works on every connection");
            }
        }
    }

    @Test
    void unknownTokenIsConfTokenNotFound() throws Exception {
        try (GatewayClient c = client()) {
            c.sendRequest(new GatewayClient.Call(), 999_999);
            assertEquals(Code.CONF_TOKEN_NOT_FOUND, errorCode(c.read()));
            c.sendResponseCall(7, 200, List.of(), 999_999);
            assertEquals(Code.CONF_TOKEN_NOT_FOUND, errorCode(c.read()));
            long t = c.prepare("conf-stop", "{\"status\":401}");
            c.sendRequest(new GatewayClient.Call(), t);
            assertEquals(401, stopOf(reqReply(c.read())).status(), "connection still serves calls");
        }
    }

    @Test
    void unknownPluginOrRejectedConfRefusesThePrepare() throws Exception {
        try (GatewayClient c = client()) {
            c.sendFrame(1, GatewayClient.prepareMessage("k", "conf-stop", "{}", "no-such-plugin", "{}"));
            assertEquals(Code.BAD_REQUEST, errorCode(c.read()));
            c.sendFrame(1, GatewayClient.prepareMessage("k", "test-bad-conf", "{}"));
            assertEquals(Code.BAD_REQUEST, errorCode(c.read()));
            c.sendFrame(1, GatewayClient.prepareMessage("k", "conf-stop", "not json"));
            assertEquals(Code.BAD_REQUEST, errorCode(c.read()));
        }
    }

    @Test
    void stopWithStatusHeadersBody() throws Exception {
        try (GatewayClient c = client()) {
            long t = c.prepare("conf-stop",
                "{\"status\":403,\"headers\":[[\"x-a\",\"1\"],[\"x-a\",\"2\"],[\"x-gone\",null]],\"body\":\"denied\"}");
            c.sendRequest(new GatewayClient.Call(), t);
            var r = reqReply(c.read());
            assertEquals(1, r.id());
            Stop s = stopOf(r);
            assertEquals(403, s.status());
            assertEquals(List.of(Field.of("x-a", "1"), Field.of("x-a", "2"), Field.of("x-gone", null)),
                fields(s.headersLength(), s::headers));
            assertEquals("denied", bytesText(s.bodyAsByteBuffer()));

            long empty = c.prepare("conf-stop", "");
            c.sendRequest(new GatewayClient.Call(), empty);
            Stop s2 = stopOf(reqReply(c.read()));
            assertEquals(200, s2.status(), "missing status: 200");
            assertEquals(0, s2.headersLength());
            assertEquals(0, s2.bodyLength());
        }
    }

    @Test
    void rewriteEveryField() throws Exception {
        try (GatewayClient c = client()) {
            long t = c.prepare("conf-rewrite", "{\"path\":\"/new\",\"headers\":[[\"x-set\",\"v\"],[\"x-del\",null]],"
                + "\"args\":[[\"a\",\"1\"],[\"a\",\"2\"],[\"gone\",null]],\"body\":\"B\",\"resp_headers\":[[\"x-r\",\"1\"],[\"x-r\",\"2\"]]}");
            c.sendRequest(new GatewayClient.Call().arg("a", "0"), t);
            Rewrite w = rewriteOf(reqReply(c.read()));
            assertEquals("/new", w.path());
            assertEquals(List.of(Field.of("x-set", "v"), Field.of("x-del", null)), fields(w.headersLength(), w::headers));
            assertEquals(List.of(Field.of("a", "1"), Field.of("a", "2"), Field.of("gone", null)), fields(w.argsLength(), w::args));
            assertEquals(List.of(Field.of("x-r", "1"), Field.of("x-r", "2")), fields(w.respHeadersLength(), w::respHeaders));
            assertEquals("B", bytesText(w.bodyAsByteBuffer()));

            long none = c.prepare("conf-rewrite", "{}");
            c.sendRequest(new GatewayClient.Call(), none);
            assertEquals(Action.NONE, reqReply(c.read()).actionType(), "nothing to rewrite: no action");
        }
    }

    @Test
    void echoFetchesPipelinedVarsAndBody() throws Exception {
        try (GatewayClient c = client()) {
            long t = c.prepare("conf-echo", "{\"vars\":[\"remote_addr\",\"route_id\",\"no_such_var\"],\"body\":true}");
            GatewayClient.Call call = new GatewayClient.Call().path("/p").arg("a", "1").arg("flag", null)
                .header("host", "example.com").headerBytes("x-bin", new byte[] {'a', (byte) 0xff});
            call.id = 42;
            c.sendRequest(call, t);
            // The three questions arrive back to back, before any answer.
            List<String> asked = new ArrayList<>();
            for (int i = 0; i < 3; i++) {
                GatewayClient.Frame q = c.read();
                assertEquals(3, q.type());
                var req = dev.ferrogate.protocol.A6.ExtraInfo.Req.getRootAsReq(q.payload());
                assertEquals(Info.Var, req.infoType());
                asked.add(((Var) req.info(new Var())).name());
            }
            assertEquals(List.of("remote_addr", "route_id", "no_such_var"), asked);
            c.answer("127.0.0.1".getBytes(StandardCharsets.UTF_8));
            c.answer("1".getBytes(StandardCharsets.UTF_8));
            c.answer(null);
            GatewayClient.Frame q = c.read();
            assertEquals(3, q.type());
            assertEquals(Info.ReqBody, dev.ferrogate.protocol.A6.ExtraInfo.Req.getRootAsReq(q.payload()).infoType());
            c.answer("hello".getBytes(StandardCharsets.UTF_8));

            var r = reqReply(c.read());
            assertEquals(42, r.id());
            Stop s = stopOf(r);
            assertEquals(200, s.status());
            assertEquals(List.of(Field.of("Content-Type", "application/json")), fields(s.headersLength(), s::headers));
            JsonNode got = JSON.readTree(bytesText(s.bodyAsByteBuffer()));
            JsonNode want = JSON.readTree("{\"method\":\"GET\",\"path\":\"/p\",\"src_ip\":\"127.0.0.1\","
                + "\"args\":[[\"a\",\"1\"],[\"flag\",null]],\"headers\":[[\"host\",\"example.com\"],[\"x-bin\",\"a\uFFFD\"]],"
                + "\"vars\":{\"remote_addr\":\"127.0.0.1\",\"route_id\":\"1\",\"no_such_var\":null},\"body\":\"hello\"}");
            assertEquals(want, got);
        }
    }

    @Test
    void chainSeesEarlierRewritesAndStopsAtTheFirstAnswer() throws Exception {
        try (GatewayClient c = client()) {
            long t = c.prepare(
                "conf-rewrite", "{\"path\":\"/r\",\"headers\":[[\"x-a\",\"new\"],[\"x-gone\",null]],\"args\":[[\"q\",\"2\"]]}",
                "conf-echo", "{}",
                "conf-fail", "{}");
            c.sendRequest(new GatewayClient.Call().header("x-a", "old").header("x-gone", "1").arg("q", "1"), t);
            Stop s = stopOf(reqReply(c.read()));
            JsonNode got = JSON.readTree(bytesText(s.bodyAsByteBuffer()));
            assertEquals("/r", got.get("path").asText());
            assertEquals(JSON.readTree("[[\"x-a\",\"new\"]]"), got.get("headers"));
            assertEquals(JSON.readTree("[[\"q\",\"2\"]]"), got.get("args"));
            assertNull(got.get("body").textValue());
        }
    }

    @Test
    void pluginExceptionIsServiceUnavailableAndTheConnectionGoesOn() throws Exception {
        try (GatewayClient c = client()) {
            long fail = c.prepare("conf-fail", "{}");
            long stop = c.prepare("conf-stop", "{\"status\":418}");
            c.sendRequest(new GatewayClient.Call(), fail);
            assertEquals(Code.SERVICE_UNAVAILABLE, errorCode(c.read()));
            assertFalse(c.pending(100), "exactly one reply");
            c.sendRequest(new GatewayClient.Call(), stop);
            assertEquals(418, stopOf(reqReply(c.read())).status());
        }
    }

    @Test
    void asyncPluginsCompleteLater() throws Exception {
        try (GatewayClient c = client()) {
            long sleep = c.prepare("conf-sleep", "{\"ms\":200}");
            long start = System.nanoTime();
            c.sendRequest(new GatewayClient.Call(), sleep);
            assertEquals(Action.NONE, reqReply(c.read()).actionType());
            assertTrue(System.nanoTime() - start >= TimeUnit.MILLISECONDS.toNanos(200), "waited");

            long var = c.prepare("test-async-var", "route_id");
            c.sendRequest(new GatewayClient.Call(), var);
            GatewayClient.Frame q = c.read();
            assertEquals(3, q.type(), "extra info asked from the plugin's own thread");
            c.answer("7".getBytes(StandardCharsets.UTF_8));
            Rewrite w = rewriteOf(reqReply(c.read()));
            assertEquals(List.of(Field.of("x-var", "7")), fields(w.headersLength(), w::headers));
        }
    }

    @Test
    void aPluginThatNeverCompletesTimesOut() throws Exception {
        try (GatewayClient c = client()) {
            long t = c.prepare("test-hang", "");
            c.sendRequest(new GatewayClient.Call(), t);
            assertEquals(Code.SERVICE_UNAVAILABLE, errorCode(c.read()));
        }
    }

    @Test
    void responseCallStatusHeadersBodyAndUpstreamBody() throws Exception {
        try (GatewayClient c = client()) {
            long t = c.prepare("conf-response", "{\"status\":201,\"headers\":[[\"x-a\",\"1\"],[\"x-a\",\"2\"]],\"body\":\"new\"}");
            c.sendResponseCall(9, 200, List.of(Field.of("content-type", "text/plain")), t);
            GatewayClient.Frame f = c.read();
            assertEquals(4, f.type());
            var r = dev.ferrogate.protocol.A6.HTTPRespCall.Resp.getRootAsResp(f.payload());
            assertEquals(9, r.id());
            assertEquals(201, r.status());
            assertEquals(List.of(Field.of("x-a", "1"), Field.of("x-a", "2")), fields(r.headersLength(), r::headers));
            assertEquals("new", bytesText(r.bodyAsByteBuffer()));

            long prefix = c.prepare("conf-response", "{\"body_prefix\":\"pre:\"}");
            c.sendResponseCall(10, 200, List.of(), prefix);
            GatewayClient.Frame q = c.read();
            assertEquals(3, q.type());
            assertEquals(Info.RespBody, dev.ferrogate.protocol.A6.ExtraInfo.Req.getRootAsReq(q.payload()).infoType());
            c.answer("upstream".getBytes(StandardCharsets.UTF_8));
            var r2 = dev.ferrogate.protocol.A6.HTTPRespCall.Resp.getRootAsResp(c.read().payload());
            assertEquals(0, r2.status(), "status kept");
            assertEquals(0, r2.headersLength(), "headers kept");
            assertEquals("pre:upstream", bytesText(r2.bodyAsByteBuffer()));

            long requestOnly = c.prepare("conf-stop", "{}");
            c.sendResponseCall(11, 200, List.of(), requestOnly);
            var r3 = dev.ferrogate.protocol.A6.HTTPRespCall.Resp.getRootAsResp(c.read().payload());
            assertEquals(11, r3.id());
            assertEquals(0, r3.status(), "a request filter does nothing in the response phase");
        }
    }

    @Test
    void malformedInputIsBadRequestAndTheConnectionGoesOn() throws Exception {
        try (GatewayClient c = client()) {
            c.sendFrame(2, new byte[0]);
            assertEquals(Code.BAD_REQUEST, errorCode(c.read()));
            c.sendFrame(2, new byte[] {(byte) 0xff, (byte) 0xff, 0, 0, 1, 2, 3, 4});
            assertEquals(Code.BAD_REQUEST, errorCode(c.read()));
            // A vector claiming 2^30 entries must not be allocated for.
            byte[] msg = GatewayClient.requestMessage(new GatewayClient.Call().header("a", "b"), 1);
            byte[] bad = msg.clone();
            for (int i = 0; i + 4 <= bad.length; i += 4) {
                if (bad[i] == 1 && bad[i + 1] == 0 && bad[i + 2] == 0 && bad[i + 3] == 0) {
                    bad[i + 3] = 0x40; // a length of 1 becomes 0x40000001
                }
            }
            c.sendFrame(2, bad);
            assertEquals(Code.BAD_REQUEST, errorCode(c.read()));
            c.sendFrame(3, new byte[8]);
            assertEquals(Code.BAD_REQUEST, errorCode(c.read()), "an answer nobody asked for");
            c.sendFrame(9, new byte[8]);
            assertEquals(Code.BAD_REQUEST, errorCode(c.read()), "an unknown type");
            long t = c.prepare("conf-stop", "{\"status\":202}");
            c.sendRequest(new GatewayClient.Call(), t);
            assertEquals(202, stopOf(reqReply(c.read())).status());
        }
    }

    @Test
    void aWrongAnswerToExtraInfoDropsTheConnection() throws Exception {
        try (GatewayClient c = client()) {
            long t = c.prepare("conf-echo", "{\"body\":true}");
            c.sendRequest(new GatewayClient.Call(), t);
            assertEquals(3, c.read().type());
            c.sendFrame(2, GatewayClient.requestMessage(new GatewayClient.Call(), t));
            assertThrows(IOException.class, c::read, "closed without a reply");
        }
    }

    @Test
    void largeBodiesUpToTheFrameLimit() throws Exception {
        try (GatewayClient c = client()) {
            long t = c.prepare("conf-response", "{\"body_prefix\":\"p\"}");
            byte[] big = new byte[12 << 20];
            Arrays.fill(big, (byte) 'y');
            c.sendResponseCall(1, 200, List.of(), t);
            assertEquals(3, c.read().type());
            c.answer(big);
            var r = dev.ferrogate.protocol.A6.HTTPRespCall.Resp.getRootAsResp(c.read().payload());
            assertEquals(big.length + 1, r.bodyLength());

            long tooBig = c.prepare("test-big-body", String.valueOf(0xFF_FFFF));
            c.sendRequest(new GatewayClient.Call(), tooBig);
            assertEquals(Code.SERVICE_UNAVAILABLE, errorCode(c.read()), "a reply over 16 MiB is not framed");

            long fits = c.prepare("test-big-body", String.valueOf(0xFF_FFFF - 200));
            c.sendRequest(new GatewayClient.Call(), fits);
            GatewayClient.Frame f = c.read();
            assertEquals(0xFF_FFFF - 200, stopOf(reqReply(f)).bodyLength());
        }
    }

    @Test
    void manyConnectionsAtOnce() throws Exception {
        long token;
        try (GatewayClient c = client()) {
            token = c.prepare("conf-rewrite", "{\"headers\":[[\"x-n\",\"1\"]]}");
        }
        ExecutorService pool = Executors.newFixedThreadPool(32);
        try {
            List<Future<Integer>> done = new ArrayList<>();
            for (int k = 0; k < 64; k++) {
                done.add(pool.submit(() -> {
                    int ok = 0;
                    try (GatewayClient c = client()) {
                        for (int i = 1; i <= 50; i++) {
                            GatewayClient.Call call = new GatewayClient.Call();
                            call.id = i;
                            c.sendRequest(call, token);
                            var r = reqReply(c.read());
                            if (r.id() == i && r.actionType() == Action.Rewrite) {
                                ok++;
                            }
                        }
                    }
                    return ok;
                }));
            }
            for (Future<Integer> f : done) {
                assertEquals(50, f.get(60, TimeUnit.SECONDS));
            }
        } finally {
            pool.shutdownNow();
        }
    }

    @Test
    void tokensExpire() throws Exception {
        Path d = Files.createTempDirectory("fg-exp");
        try (Runner r = Runner.builder().socket(d.resolve("e.sock")).plugin(new BigBody())
                .confExpire(Duration.ofMillis(300)).start();
             GatewayClient c = new GatewayClient(r.socketPath())) {
            long t = c.prepare("test-big-body", "1");
            c.sendRequest(new GatewayClient.Call(), t);
            assertEquals(2, c.read().type());
            Thread.sleep(450);
            c.sendRequest(new GatewayClient.Call(), t);
            assertEquals(Code.CONF_TOKEN_NOT_FOUND, errorCode(c.read()));
        } finally {
            Files.deleteIfExists(d.resolve("e.sock"));
            Files.deleteIfExists(d);
        }
    }

    @Test
    void aStaleSocketFileIsReplaced() throws Exception {
        Path d = Files.createTempDirectory("fg-stale");
        Path sock = d.resolve("s.sock");
        Files.writeString(sock, "stale");
        try (Runner r = Runner.builder().socket(sock).plugin(new BigBody()).start();
             GatewayClient c = new GatewayClient(sock)) {
            assertNotEquals(0, c.prepare("test-big-body", "1"));
        }
        assertFalse(Files.exists(sock));
        Files.delete(d);
    }

    @Test
    void duplicatePluginNamesAreRefused() {
        assertThrows(IllegalArgumentException.class, () -> Runner.builder()
            .socket(dir.resolve("dup.sock")).plugin(new BigBody()).plugin(new BigBody()).start());
    }
}
