package dev.ferrogate.tests;

import static dev.ferrogate.tests.GatewayClient.bytesText;
import static dev.ferrogate.tests.GatewayClient.fields;
import static org.junit.jupiter.api.Assertions.assertEquals;

import dev.ferrogate.examples.ReplaceBody;
import dev.ferrogate.examples.TokenAuth;
import dev.ferrogate.plugin.Field;
import dev.ferrogate.protocol.A6.ExtraInfo.Info;
import dev.ferrogate.protocol.A6.ExtraInfo.Var;
import dev.ferrogate.protocol.A6.HTTPReqCall.Action;
import dev.ferrogate.protocol.A6.HTTPReqCall.Rewrite;
import dev.ferrogate.protocol.A6.HTTPReqCall.Stop;
import dev.ferrogate.runner.Runner;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import org.junit.jupiter.api.Test;

/** Two example plugins through the real runner on a socket: a variable and the upstream body via extra info. */
class ExamplesE2ETest {

    @Test
    void tokenAuthAndReplaceBodyOverTheSocket() throws Exception {
        Path d = Files.createTempDirectory("fg-ex");
        try (Runner r = Runner.builder().socket(d.resolve("x.sock")).plugin(new TokenAuth()).plugin(new ReplaceBody()).start();
             GatewayClient c = new GatewayClient(r.socketPath())) {
            long auth = c.prepare("token-auth", "{\"var\":\"arg_expected\"}");

            c.sendRequest(new GatewayClient.Call().header("x-token", "s3cret"), auth);
            GatewayClient.Frame q = c.read();
            assertEquals(3, q.type());
            var question = dev.ferrogate.protocol.A6.ExtraInfo.Req.getRootAsReq(q.payload());
            assertEquals(Info.Var, question.infoType());
            assertEquals("arg_expected", ((Var) question.info(new Var())).name());
            c.answer("s3cret".getBytes(StandardCharsets.UTF_8));
            var ok = dev.ferrogate.protocol.A6.HTTPReqCall.Resp.getRootAsResp(c.read().payload());
            assertEquals(Action.Rewrite, ok.actionType());
            Rewrite w = (Rewrite) ok.action(new Rewrite());
            assertEquals(List.of(Field.of("x-token", null)), fields(w.headersLength(), w::headers));

            c.sendRequest(new GatewayClient.Call().header("x-token", "wrong"), auth);
            assertEquals(3, c.read().type());
            c.answer("s3cret".getBytes(StandardCharsets.UTF_8));
            var denied = dev.ferrogate.protocol.A6.HTTPReqCall.Resp.getRootAsResp(c.read().payload());
            Stop s = (Stop) denied.action(new Stop());
            assertEquals(401, s.status());
            assertEquals("{\"message\":\"invalid token\"}", bytesText(s.bodyAsByteBuffer()));

            long body = c.prepare("replace-body", "{\"find\":\"world\",\"replace\":\"java\"}");
            c.sendResponseCall(3, 200, List.of(Field.of("content-type", "text/plain"), Field.of("content-length", "11")), body);
            GatewayClient.Frame rb = c.read();
            assertEquals(Info.RespBody, dev.ferrogate.protocol.A6.ExtraInfo.Req.getRootAsReq(rb.payload()).infoType());
            c.answer("hello world".getBytes(StandardCharsets.UTF_8));
            var resp = dev.ferrogate.protocol.A6.HTTPRespCall.Resp.getRootAsResp(c.read().payload());
            assertEquals("hello java", bytesText(resp.bodyAsByteBuffer()));
            assertEquals(List.of(Field.of("content-type", "text/plain"), Field.of("X-Body-Rewritten", "1")),
                fields(resp.headersLength(), resp::headers));
        } finally {
            Files.deleteIfExists(d.resolve("x.sock"));
            Files.deleteIfExists(d);
        }
    }
}
