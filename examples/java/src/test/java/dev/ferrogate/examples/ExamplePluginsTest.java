package dev.ferrogate.examples;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertFalse;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;
import static org.junit.jupiter.api.Assertions.assertTrue;

import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.testing.PluginTester;
import dev.ferrogate.plugin.testing.TestRequest;
import dev.ferrogate.plugin.testing.TestResponse;
import dev.ferrogate.plugin.testing.TestUpstreamResponse;
import java.util.List;
import java.util.ServiceLoader;
import java.util.TreeSet;
import org.junit.jupiter.api.Test;

/** Unit tests of the example plugins with the SDK's in-memory doubles (no gateway, no socket). */
class ExamplePluginsTest {

    @Test
    void allExamplesAreRegisteredForServiceLoader() {
        TreeSet<String> names = new TreeSet<>();
        for (Plugin<?> p : ServiceLoader.load(Plugin.class)) {
            names.add(p.name());
        }
        assertEquals(new TreeSet<>(List.of("replace-body", "rewrite-path", "say", "served-by", "token-auth")), names);
    }

    @Test
    void sayAnswersWithItsBody() throws Exception {
        TestResponse resp = new TestResponse();
        PluginTester.filter(new Say(), "{\"status\":418,\"body\":\"teapot\"}", TestRequest.builder().build(), resp);
        assertTrue(resp.answered());
        assertEquals(418, resp.status());
        assertEquals("teapot", resp.bodyText());
        assertEquals(List.of(Field.of("Content-Type", "text/plain; charset=utf-8")), resp.headers());

        TestResponse dflt = new TestResponse();
        PluginTester.filter(new Say(), "", TestRequest.builder().build(), dflt);
        assertEquals(200, dflt.status());
    }

    @Test
    void rewritePathReplacesThePrefix() throws Exception {
        TestRequest req = TestRequest.builder().path("/old/x").arg("debug", null).arg("keep", "1").build();
        TestResponse resp = new TestResponse();
        PluginTester.filter(new RewritePath(), "{\"from\":\"/old\",\"to\":\"/new\"}", req, resp);
        assertFalse(resp.answered());
        assertEquals("/new/x", req.pathRewrite());
        assertEquals("/new/x", req.path(), "reads see the rewrite");
        assertEquals(List.of(Field.of("x-original-path", "/old/x")), req.headerRewrites());
        assertEquals(List.of(Field.of("debug", null)), req.argRewrites());
        assertEquals(List.of(Field.of("keep", "1")), req.args());
    }

    @Test
    void rewritePathLeavesOtherPathsAndRejectsABadConf() throws Exception {
        TestRequest req = TestRequest.builder().path("/other").build();
        PluginTester.filter(new RewritePath(), "{\"from\":\"/old\",\"to\":\"/new\"}", req, new TestResponse());
        assertFalse(req.rewritten());
        assertThrows(Exception.class, () -> new RewritePath().parseConf("{\"from\":\"old\"}"));
        assertThrows(Exception.class, () -> new RewritePath().parseConf("{\"from\":\"/a\",\"typo\":1}"));
    }

    @Test
    void servedByAddsAResponseHeaderWithoutAnswering() throws Exception {
        TestResponse resp = new TestResponse();
        PluginTester.filter(new ServedBy(), "{}", TestRequest.builder().build(), resp);
        assertFalse(resp.answered());
        assertEquals(List.of(Field.of("X-Served-By", "ferrogate-java")), resp.headers());
    }

    @Test
    void replaceBodyRewritesTheUpstreamBody() throws Exception {
        TestUpstreamResponse up = TestUpstreamResponse.builder().header("content-type", "text/plain")
            .header("content-length", "11").body("hello world").build();
        PluginTester.responseFilter(new ReplaceBody(), "{\"find\":\"world\",\"replace\":\"java\"}", up);
        assertEquals("hello java", up.bodyChangeText());
        assertEquals(List.of(Field.of("content-type", "text/plain"), Field.of("X-Body-Rewritten", "1")), up.headersChange());
        assertEquals(0, up.statusChange());

        TestUpstreamResponse untouched = TestUpstreamResponse.builder().body("nothing here").build();
        PluginTester.responseFilter(new ReplaceBody(), "{\"find\":\"world\",\"replace\":\"java\"}", untouched);
        assertNull(untouched.bodyChange());
        assertNull(untouched.headersChange(), "headers untouched: the upstream's are kept");
    }

    @Test
    void tokenAuthLetsTheRightTokenThroughAndHidesIt() throws Exception {
        TestRequest req = TestRequest.builder().header("X-Token", "s3cret").var("arg_expected", "s3cret").build();
        TestResponse resp = new TestResponse();
        PluginTester.filter(new TokenAuth(), "{\"var\":\"arg_expected\"}", req, resp);
        assertFalse(resp.answered());
        assertEquals(List.of(Field.of("x-token", null)), req.headerRewrites());
        assertEquals(1, req.varRequests(), "one extra-info round trip");
    }

    @Test
    void tokenAuthAnswers401OnAWrongOrMissingToken() throws Exception {
        for (TestRequest req : List.of(
                TestRequest.builder().header("x-token", "nope").var("v", "s3cret").build(),
                TestRequest.builder().var("v", "s3cret").build(),
                TestRequest.builder().header("x-token", "").build())) {
            TestResponse resp = new TestResponse();
            PluginTester.filter(new TokenAuth(), "{\"var\":\"v\"}", req, resp);
            assertTrue(resp.answered());
            assertEquals(401, resp.status());
            assertEquals("{\"message\":\"invalid token\"}", resp.bodyText());
        }
        assertThrows(Exception.class, () -> new TokenAuth().parseConf("{}"), "var is required");
    }
}
