package dev.ferrogate.plugin;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferrogate.plugin.internal.Fields;
import dev.ferrogate.plugin.testing.PluginTester;
import dev.ferrogate.plugin.testing.TestRequest;
import dev.ferrogate.plugin.testing.TestResponse;
import dev.ferrogate.plugin.testing.TestUpstreamResponse;
import java.util.Arrays;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.CompletableFuture;
import java.util.concurrent.CompletionStage;
import org.junit.jupiter.api.Test;

/** The rewrite bookkeeping every runner call goes through (RequestState, ResponseState, UpstreamState). */
class RequestStateTest {

    private static TestRequest req() {
        return TestRequest.builder().path("/a").header("Host", "h").header("x-m", "1").header("x-m", "2")
            .arg("a", "1").arg("a", "2").arg("flag", null).var("route_id", "7").body("B").build();
    }

    @Test
    void readsWhatTheGatewaySent() {
        TestRequest r = req();
        assertEquals("GET", r.method());
        assertEquals("127.0.0.1", r.sourceIp());
        assertEquals("h", r.header("HOST"), "header names are case-insensitive");
        assertEquals(List.of("1", "2"), r.headerValues("x-m"));
        assertEquals("1", r.arg("a"));
        assertNull(r.arg("flag"));
        assertEquals(Arrays.asList((String) null), r.argValues("flag"));
        assertFalse(r.rewritten());
    }

    @Test
    void headerRewritesReplaceAndDeleteAndAreSeenByReads() {
        TestRequest r = req();
        r.setHeader("X-M", "3");
        r.setHeader("x-m", "4");
        r.removeHeader("host");
        r.setHeader("x-new", "n");
        assertEquals(List.of(Field.of("x-m", "4"), Field.of("host", null), Field.of("x-new", "n")), r.headerRewrites());
        assertEquals("4", r.header("x-m"));
        assertNull(r.header("host"));
        assertEquals(List.of(Field.of("x-m", "4"), Field.of("x-new", "n")), r.headers());
    }

    @Test
    void argRewritesFollowTheGatewaysFirstReplacesLaterAppendRule() {
        TestRequest r = req();
        r.addArg("a", "3");
        assertEquals(List.of(Field.of("a", "1"), Field.of("a", "2"), Field.of("a", "3")), r.argRewrites(),
            "adding restates the current values first");
        assertEquals(List.of("1", "2", "3"), r.argValues("a"));
        r.setArg("a", "9");
        assertEquals(List.of(Field.of("a", "9")), r.argRewrites());
        assertEquals(List.of("9"), r.argValues("a"));
        r.removeArg("flag");
        r.addArg("b", "x");
        assertEquals(List.of(Field.of("a", "9"), Field.of("flag", null), Field.of("b", "x")), r.argRewrites());
        assertEquals(List.of(Field.of("a", "9"), Field.of("b", "x")), r.args());
    }

    @Test
    void gatewayArgRuleOnRawLists() {
        List<Field> base = List.of(Field.of("a", "0"), Field.of("k", "v"));
        assertEquals(List.of(Field.of("a", "1"), Field.of("k", "v"), Field.of("a", "2")),
            Fields.applyArgRewrites(base, List.of(Field.of("a", "1"), Field.of("a", "2"))));
        assertEquals(List.of(Field.of("a", "0")),
            Fields.applyArgRewrites(base, List.of(Field.of("k", null))));
    }

    @Test
    void pathAndBodyRewrites() {
        TestRequest r = req();
        assertEquals("B", new String(r.body()));
        r.setPath("/b");
        r.setBody("new");
        assertEquals("/b", r.path());
        assertEquals("new", new String(r.body()));
        r.setBody(new byte[0]);
        assertNull(r.bodyRewrite(), "an empty body cannot replace: the original stays");
        assertEquals("/b", r.pathRewrite());
        assertTrue(r.rewritten());
    }

    @Test
    void varsAndBodyAreAskedOnceAndCached() {
        TestRequest r = req();
        assertEquals("7", r.var("route_id"));
        assertEquals("7", r.var("route_id"));
        assertNull(r.var("nope"));
        assertNull(r.var("nope"));
        assertEquals(2, r.varRequests());
        Map<String, String> want = new LinkedHashMap<>();
        want.put("nope", null);
        want.put("other", null);
        want.put("route_id", "7");
        assertEquals(want, r.vars("nope", "other", "route_id"));
        assertEquals(3, r.varRequests(), "only the unknown name is asked, in one round trip");
        r.body();
        r.body();
        assertEquals(1, r.bodyRequests());
    }

    @Test
    void responseAnswersOnStatusBodyOrStopButNotOnHeaders() {
        TestResponse resp = new TestResponse();
        resp.setHeader("x", "1").addHeader("x", "2").removeHeader("y");
        assertFalse(resp.answered());
        assertEquals(List.of(Field.of("x", "1"), Field.of("x", "2"), Field.of("y", null)), resp.headers());
        resp.setHeader("X", "3");
        assertEquals(List.of(Field.of("y", null), Field.of("X", "3")), resp.headers());
        assertTrue(new TestResponse().setBody("b").answered());
        assertTrue(new TestResponse().stop().answered());
        TestResponse stopped = new TestResponse();
        stopped.stop();
        assertEquals(0, stopped.status(), "no status set: 0 on the wire, which the gateway sends as 200");
        assertThrows(IllegalArgumentException.class, () -> new TestResponse().setStatus(42));
    }

    @Test
    void upstreamHeaderChangesSendTheWholeList() {
        TestUpstreamResponse up = TestUpstreamResponse.builder().status(200).header("a", "1").header("b", "2").body("x").build();
        assertNull(up.headersChange());
        up.setHeader("A", "9");
        up.addHeader("c", "3");
        up.removeHeader("b");
        assertEquals(List.of(Field.of("A", "9"), Field.of("c", "3")), up.headersChange());
        assertEquals("9", up.header("a"));
        up.setStatus(201);
        assertEquals(201, up.status());
        assertEquals("x", new String(up.upstreamBody()));
        up.clearHeaders();
        assertEquals(List.of(), up.headersChange());
    }

    static final class Async implements Plugin<String> {
        @Override
        public String name() {
            return "async";
        }

        @Override
        public String parseConf(String conf) {
            return conf;
        }

        @Override
        public CompletionStage<Void> filterAsync(String conf, Request request, Response response) {
            return CompletableFuture.runAsync(() -> {
                if (conf.equals("fail")) {
                    throw new IllegalStateException("boom");
                }
                response.setStatus(204);
            });
        }
    }

    @Test
    void pluginTesterAwaitsAsyncFiltersAndUnwrapsFailures() throws Exception {
        TestResponse resp = new TestResponse();
        PluginTester.filter(new Async(), "ok", req(), resp);
        assertEquals(204, resp.status());
        assertThrows(IllegalStateException.class, () -> PluginTester.filter(new Async(), "fail", req(), new TestResponse()));
    }

    @Test
    void ipv6IsPrintedCompressed() {
        byte[] one = new byte[16];
        one[15] = 1;
        assertEquals("::1", TestRequest.builder().sourceAddress(one).build().sourceIp());
        byte[] v6 = {0x20, 0x01, 0x0d, (byte) 0xb8, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5};
        assertEquals("2001:db8::5", TestRequest.builder().sourceAddress(v6).build().sourceIp());
        assertEquals("", TestRequest.builder().sourceAddress(new byte[0]).build().sourceIp());
    }
}
