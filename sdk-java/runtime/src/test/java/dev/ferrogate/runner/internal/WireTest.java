package dev.ferrogate.runner.internal;

import static org.junit.jupiter.api.Assertions.assertEquals;
import static org.junit.jupiter.api.Assertions.assertNull;
import static org.junit.jupiter.api.Assertions.assertThrows;

import com.google.flatbuffers.FlatBufferBuilder;
import dev.ferrogate.plugin.Field;
import dev.ferrogate.protocol.A6.TextEntry;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.util.List;
import java.util.Random;
import org.junit.jupiter.api.Test;

class WireTest {

    private static ByteBuffer buf(byte[] b) {
        return ByteBuffer.wrap(b).order(ByteOrder.LITTLE_ENDIAN);
    }

    private static byte[] request() {
        FlatBufferBuilder b = new FlatBufferBuilder(128);
        int src = b.createByteVector(new byte[] {10, 0, 0, 1});
        int path = b.createString(ByteBuffer.wrap(new byte[] {'/', (byte) 0xC3, 'x'}));
        int n = b.createString("X-Token");
        int v = b.createString("t");
        int e = TextEntry.createTextEntry(b, n, v);
        int n2 = b.createString("flag");
        int e2 = TextEntry.createTextEntry(b, n2, 0);
        int headers = dev.ferrogate.protocol.A6.HTTPReqCall.Req.createHeadersVector(b, new int[] {e});
        int args = dev.ferrogate.protocol.A6.HTTPReqCall.Req.createArgsVector(b, new int[] {e2});
        b.finish(dev.ferrogate.protocol.A6.HTTPReqCall.Req.createReq(b, 5, src, 2, path, args, headers, 9));
        return b.sizedByteArray();
    }

    @Test
    void readsARequest() {
        ByteBuffer bb = buf(request());
        int t = Wire.root(bb);
        assertEquals(5, Wire.u32Field(bb, t, CallRequest.ID));
        assertEquals(9, Wire.u32Field(bb, t, CallRequest.CONF_TOKEN));
        assertEquals(2, Wire.u8Field(bb, t, CallRequest.METHOD));
        assertEquals("/\uFFFDx", Wire.string(bb, t, CallRequest.PATH), "invalid UTF-8 reads as U+FFFD");
        int h = Wire.checkEntries(bb, t, CallRequest.HEADERS);
        assertEquals(List.of(Field.of("X-Token", "t")), Wire.entries(bb, h));
        assertEquals("t", Wire.firstValue(bb, h, "x-token"), "names compare ASCII case-insensitively");
        assertNull(Wire.firstValue(bb, h, "x-other"));
        assertEquals(List.of(Field.of("flag", null)), Wire.entries(bb, Wire.checkEntries(bb, t, CallRequest.ARGS)));
        assertEquals(-1, Wire.checkEntries(bb, t, 9), "a slot past the vtable is absent");
    }

    @Test
    void rejectsTruncatedAndEmptyPayloads() {
        byte[] full = request();
        for (int len = 0; len < full.length; len += 3) {
            byte[] cut = java.util.Arrays.copyOf(full, len);
            assertThrows(BadMessage.class, () -> {
                ByteBuffer bb = buf(cut);
                int t = Wire.root(bb);
                Wire.checkEntries(bb, t, CallRequest.HEADERS);
                Wire.checkEntries(bb, t, CallRequest.ARGS);
                Wire.vector(bb, t, CallRequest.PATH, 1);
                Wire.vector(bb, t, CallRequest.SRC_IP, 1);
            }, "cut at " + len);
        }
    }

    @Test
    void randomCorruptionNeverEscapesAsAnythingButBadMessage() {
        byte[] full = request();
        Random rnd = new Random(7);
        for (int i = 0; i < 5000; i++) {
            byte[] b = full.clone();
            for (int k = 0; k < 3; k++) {
                b[rnd.nextInt(b.length)] = (byte) rnd.nextInt(256);
            }
            try {
                ByteBuffer bb = buf(b);
                int t = Wire.root(bb);
                new CallRequest(null, bb, t).headers();
            } catch (BadMessage expected) {
                // fine
            }
        }
    }
}
