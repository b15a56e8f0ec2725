package dev.ferrogate.tests;

import static org.junit.jupiter.api.Assertions.assertEquals;

import com.google.flatbuffers.FlatBufferBuilder;
import dev.ferrogate.plugin.Field;
import dev.ferrogate.protocol.A6.TextEntry;
import java.io.EOFException;
import java.io.IOException;
import java.net.StandardProtocolFamily;
import java.net.UnixDomainSocketAddress;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.SocketChannel;
import java.nio.charset.StandardCharsets;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;

/** The gateway side of the protocol, enough to drive a runner in tests. */
final class GatewayClient implements AutoCloseable {
    record Frame(int type, ByteBuffer payload) {
    }

    /** A request call's content. */
    static final class Call {
        long id = 1;
        byte[] srcIp = {127, 0, 0, 1};
        int method = 0;
        byte[] path = "/p".getBytes(StandardCharsets.UTF_8);
        List<byte[][]> args = new ArrayList<>();
        List<byte[][]> headers = new ArrayList<>();

        Call header(String name, String value) {
            headers.add(new byte[][] {utf8(name), value == null ? null : utf8(value)});
            return this;
        }

        Call headerBytes(String name, byte[] value) {
            headers.add(new byte[][] {utf8(name), value});
            return this;
        }

        Call arg(String name, String value) {
            args.add(new byte[][] {utf8(name), value == null ? null : utf8(value)});
            return this;
        }

        Call path(String p) {
            path = utf8(p);
            return this;
        }
    }

    final SocketChannel ch;

    GatewayClient(Path socket) throws IOException {
        ch = SocketChannel.open(StandardProtocolFamily.UNIX);
        ch.connect(UnixDomainSocketAddress.of(socket));
    }

    static byte[] utf8(String s) {
        return s.getBytes(StandardCharsets.UTF_8);
    }

    // ---------------------------------------------------------------- raw frames

    void sendFrame(int type, byte[] payload) throws IOException {
        ByteBuffer b = ByteBuffer.allocate(4 + payload.length);
        b.put((byte) type).put((byte) (payload.length >>> 16)).put((byte) (payload.length >>> 8)).put((byte) payload.length);
        b.put(payload).flip();
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }

    Frame read() throws IOException {
        ByteBuffer h = ByteBuffer.allocate(4);
        fill(h);
        int type = h.get(0) & 0xFF;
        int len = ((h.get(1) & 0xFF) << 16) | ((h.get(2) & 0xFF) << 8) | (h.get(3) & 0xFF);
        ByteBuffer p = ByteBuffer.allocate(len);
        fill(p);
        p.flip();
        return new Frame(type, p.order(ByteOrder.LITTLE_ENDIAN));
    }

    private void fill(ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            if (ch.read(b) < 0) {
                throw new EOFException("runner closed the connection");
            }
        }
    }

    /** Whether a frame (or EOF) is waiting within {@code ms}; reads nothing. */
    boolean pending(long ms) throws IOException, InterruptedException {
        ch.configureBlocking(false);
        try {
            ByteBuffer one = ByteBuffer.allocate(1);
            long end = System.nanoTime() + ms * 1_000_000;
            while (System.nanoTime() < end) {
                int n = ch.read(one);
                if (n != 0) {
                    return true;
                }
                Thread.sleep(5);
            }
            return false;
        } finally {
            ch.configureBlocking(true);
        }
    }

    // ---------------------------------------------------------------- messages

    static int entries(FlatBufferBuilder b, List<byte[][]> list) {
        if (list.isEmpty()) {
            return 0;
        }
        int[] offs = new int[list.size()];
        for (int i = 0; i < offs.length; i++) {
            int n = b.createString(ByteBuffer.wrap(list.get(i)[0]));
            int v = list.get(i)[1] == null ? 0 : b.createString(ByteBuffer.wrap(list.get(i)[1]));
            offs[i] = TextEntry.createTextEntry(b, n, v);
        }
        return dev.ferrogate.protocol.A6.PrepareConf.Req.createConfVector(b, offs);
    }

    static byte[] prepareMessage(String key, String... nameValues) {
        FlatBufferBuilder b = new FlatBufferBuilder(256);
        List<byte[][]> conf = new ArrayList<>();
        for (int i = 0; i < nameValues.length; i += 2) {
            conf.add(new byte[][] {utf8(nameValues[i]), utf8(nameValues[i + 1])});
        }
        int c = entries(b, conf);
        int k = b.createString(key);
        b.finish(dev.ferrogate.protocol.A6.PrepareConf.Req.createReq(b, c, k));
        return b.sizedByteArray();
    }

    private static final java.util.concurrent.atomic.AtomicLong VERSION = new java.util.concurrent.atomic.AtomicLong();

    /** Prepares a chain of (name, value) pairs under a fresh key and returns the token. */
    long prepare(String... nameValues) throws IOException {
        return prepareKeyed("route#1#ext-plugin-pre-req#" + VERSION.incrementAndGet(), nameValues);
    }

    /** Prepares a chain under this key and returns the token. */
    long prepareKeyed(String key, String... nameValues) throws IOException {
        sendFrame(1, prepareMessage(key, nameValues));
        Frame f = read();
        assertEquals(1, f.type(), "prepare reply type");
        long token = dev.ferrogate.protocol.A6.PrepareConf.Resp.getRootAsResp(f.payload()).confToken();
        return token;
    }

    static byte[] requestMessage(Call c, long token) {
        FlatBufferBuilder b = new FlatBufferBuilder(256);
        int src = b.createByteVector(c.srcIp);
        int path = b.createString(ByteBuffer.wrap(c.path));
        int args = entries(b, c.args);
        int headers = entries(b, c.headers);
        b.finish(dev.ferrogate.protocol.A6.HTTPReqCall.Req.createReq(b, c.id, src, c.method, path, args, headers, token));
        return b.sizedByteArray();
    }

    void sendRequest(Call c, long token) throws IOException {
        sendFrame(2, requestMessage(c, token));
    }

    void sendResponseCall(long id, int status, List<Field> headers, long token) throws IOException {
        FlatBufferBuilder b = new FlatBufferBuilder(256);
        List<byte[][]> h = new ArrayList<>();
        for (Field f : headers) {
            h.add(new byte[][] {utf8(f.name()), f.value() == null ? null : utf8(f.value())});
        }
        int hv = entries(b, h);
        b.finish(dev.ferrogate.protocol.A6.HTTPRespCall.Req.createReq(b, id, status, hv, token));
        sendFrame(4, b.sizedByteArray());
    }

    /** Answers an extra-info question; null = absent result. */
    void answer(byte[] result) throws IOException {
        FlatBufferBuilder b = new FlatBufferBuilder(result == null ? 64 : result.length + 64);
        int r = result == null ? 0 : b.createByteVector(result);
        b.finish(dev.ferrogate.protocol.A6.ExtraInfo.Resp.createResp(b, r));
        sendFrame(3, b.sizedByteArray());
    }

    static int errorCode(Frame f) {
        assertEquals(0, f.type(), "an error frame (type 0)");
        return dev.ferrogate.protocol.A6.Err.Resp.getRootAsResp(f.payload()).code();
    }

    static List<Field> fields(int n, java.util.function.IntFunction<TextEntry> get) {
        List<Field> out = new ArrayList<>();
        for (int i = 0; i < n; i++) {
            TextEntry e = get.apply(i);
            out.add(new Field(e.name(), e.value()));
        }
        return out;
    }

    static String bytesText(ByteBuffer b) {
        if (b == null) {
            return null;
        }
        byte[] a = new byte[b.remaining()];
        b.get(a);
        return new String(a, StandardCharsets.UTF_8);
    }

    @Override
    public void close() throws IOException {
        ch.close();
    }
}
