package dev.ferrogate.runner.internal;

import com.google.flatbuffers.FlatBufferBuilder;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.ByteChannel;
import java.nio.channels.GatheringByteChannel;

/**
 * Frames on one connection: {@code type:u8, length:u24 big-endian, payload}.
 *
 * <p>Buffers are reused across calls: one builder for replies and two payload buffers, one for
 * calls and one for extra-info answers (read while the call's payload is still being used). A buffer
 * grown past {@link #KEEP} for a large message is dropped afterwards so an idle connection does
 * not pin megabytes.
 */
final class FrameIO {
    static final int MAX_PAYLOAD = 0xFF_FFFF;
    static final int TYPE_ERROR = 0;
    static final int TYPE_PREPARE = 1;
    static final int TYPE_HTTP_REQ = 2;
    static final int TYPE_EXTRA_INFO = 3;
    static final int TYPE_HTTP_RESP = 4;

    /** Buffers above this size are not kept between calls. */
    static final int KEEP = 1 << 20;
    private static final int INITIAL = 8 << 10;

    private final ByteChannel ch;
    private final ByteBuffer header = ByteBuffer.allocate(4);
    private final ByteBuffer[] gather = new ByteBuffer[2];
    private ByteBuffer callBuf = newBuffer(INITIAL);
    private ByteBuffer infoBuf = newBuffer(INITIAL);
    private FlatBufferBuilder builder = new FlatBufferBuilder(INITIAL);
    /** The builder's buffer size after the last finished message (its buffer is only readable then). */
    private int builderCapacity = INITIAL;
    private ByteBuffer out;

    FrameIO(ByteChannel ch) {
        this.ch = ch;
    }

    private static ByteBuffer newBuffer(int size) {
        return ByteBuffer.allocate(size).order(ByteOrder.LITTLE_ENDIAN);
    }

    /** The builder for the next outgoing message, cleared. */
    FlatBufferBuilder builder() {
        if (builderCapacity > KEEP) {
            builder = new FlatBufferBuilder(INITIAL);
            builderCapacity = INITIAL;
        } else {
            builder.clear();
        }
        return builder;
    }

    /**
     * Reads one frame into the call buffer; returns its type, or -1 at a clean end of stream
     * (the peer closed between frames). The payload is then {@link #callPayload()}.
     */
    int readCall() throws IOException {
        if (callBuf.capacity() > KEEP) {
            callBuf = newBuffer(INITIAL);
        }
        header.clear();
        if (!fill(header, true)) {
            return -1;
        }
        int type = header.get(0) & 0xFF;
        int len = ((header.get(1) & 0xFF) << 16) | ((header.get(2) & 0xFF) << 8) | (header.get(3) & 0xFF);
        callBuf = readPayload(callBuf, len);
        return type;
    }

    ByteBuffer callPayload() {
        return callBuf;
    }

    /** Reads one frame into the extra-info buffer; returns its type (EOF is an error here). */
    int readInfo() throws IOException {
        if (infoBuf.capacity() > KEEP) {
            infoBuf = newBuffer(INITIAL);
        }
        header.clear();
        fill(header, false);
        int type = header.get(0) & 0xFF;
        int len = ((header.get(1) & 0xFF) << 16) | ((header.get(2) & 0xFF) << 8) | (header.get(3) & 0xFF);
        infoBuf = readPayload(infoBuf, len);
        return type;
    }

    ByteBuffer infoPayload() {
        return infoBuf;
    }

    private ByteBuffer readPayload(ByteBuffer buf, int len) throws IOException {
        // len < 2^24 by construction of the header: never more than MAX_PAYLOAD.
        if (buf.capacity() < len) {
            buf = newBuffer(Math.max(len, Math.min(buf.capacity() * 2, MAX_PAYLOAD)));
        }
        buf.clear().limit(len);
        fill(buf, false);
        buf.position(0);
        return buf;
    }

    /** Fills {@code b}; false on EOF before the first byte when {@code eofOk}. */
    private boolean fill(ByteBuffer b, boolean eofOk) throws IOException {
        boolean first = true;
        while (b.hasRemaining()) {
            int n = ch.read(b);
            if (n < 0) {
                if (first && eofOk) {
                    return false;
                }
                throw new EOFException("connection closed mid-frame");
            }
            first = false;
        }
        return true;
    }

    /**
     * Sends the finished message in {@link #builder()} as one frame, header and payload in one
     * write where the builder left room for the header (almost always), else one gathering write.
     *
     * @return false when the payload is too large for a frame (nothing was sent)
     */
    boolean send(int type) throws IOException {
        ByteBuffer bb = builder.dataBuffer();
        builderCapacity = bb.capacity();
        int start = bb.position();
        int len = bb.capacity() - start;
        if (len > MAX_PAYLOAD) {
            return false;
        }
        if (start >= 4) {
            ByteBuffer w = bb.duplicate();
            w.put(start - 4, (byte) type).put(start - 3, (byte) (len >>> 16)).put(start - 2, (byte) (len >>> 8)).put(start - 1, (byte) len);
            w.limit(bb.capacity()).position(start - 4);
            writeFully(w);
        } else {
            ByteBuffer h = ByteBuffer.allocate(4);
            h.put(0, (byte) type).put(1, (byte) (len >>> 16)).put(2, (byte) (len >>> 8)).put(3, (byte) len);
            ByteBuffer p = bb.duplicate();
            p.limit(bb.capacity()).position(start);
            gather[0] = h;
            gather[1] = p;
            GatheringByteChannel g = (GatheringByteChannel) ch;
            while (h.hasRemaining() || p.hasRemaining()) {
                g.write(gather);
            }
        }
        return true;
    }

    /** Appends the finished message in the builder as a frame to the pending output (see {@link #flush}). */
    void queue(int type) {
        ByteBuffer bb = builder.dataBuffer();
        builderCapacity = bb.capacity();
        int start = bb.position();
        int len = bb.capacity() - start;
        if (out == null || (out.limit() == 0 && out.capacity() > KEEP)) {
            out = ByteBuffer.allocate(Math.max(INITIAL, 4 + len));
            out.limit(0);
        }
        int need = out.limit() + 4 + len;
        if (out.capacity() < need) {
            ByteBuffer bigger = ByteBuffer.allocate(Math.max(need, out.capacity() * 2));
            out.position(0);
            bigger.put(out);
            bigger.limit(bigger.position());
            out = bigger;
        }
        int at = out.limit();
        out.limit(need);
        out.position(at);
        out.put((byte) type).put((byte) (len >>> 16)).put((byte) (len >>> 8)).put((byte) len);
        ByteBuffer p = bb.duplicate();
        p.limit(bb.capacity()).position(start);
        out.put(p);
    }

    /** Writes the queued frames with one write. */
    void flush() throws IOException {
        if (out == null || out.limit() == 0) {
            return;
        }
        out.position(0);
        writeFully(out);
        out.clear().limit(0);
    }

    /** Sends a prebuilt frame. */
    void sendRaw(byte[] frame) throws IOException {
        writeFully(ByteBuffer.wrap(frame));
    }

    private void writeFully(ByteBuffer b) throws IOException {
        while (b.hasRemaining()) {
            ch.write(b);
        }
    }
}
