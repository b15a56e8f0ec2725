package dev.ferrogate.runner.internal;

import java.io.ByteArrayOutputStream;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.nio.channels.GatheringByteChannel;
import java.util.ArrayList;
import java.util.List;

/** A scripted connection: reads a fixed input then EOF; records every write call. */
final class MemChannel implements ByteChannel, GatheringByteChannel {
    private final ByteBuffer in;
    final ByteArrayOutputStream out = new ByteArrayOutputStream();
    int writeCalls;
    private boolean open = true;

    MemChannel(byte[]... frames) {
        int n = 0;
        for (byte[] f : frames) {
            n += f.length;
        }
        in = ByteBuffer.allocate(n);
        for (byte[] f : frames) {
            in.put(f);
        }
        in.flip();
    }

    @Override
    public int read(ByteBuffer dst) {
        if (!in.hasRemaining()) {
            return -1;
        }
        int n = Math.min(dst.remaining(), in.remaining());
        ByteBuffer s = in.slice();
        s.limit(n);
        dst.put(s);
        in.position(in.position() + n);
        return n;
    }

    @Override
    public int write(ByteBuffer src) {
        writeCalls++;
        int n = src.remaining();
        byte[] b = new byte[n];
        src.get(b);
        out.write(b, 0, n);
        return n;
    }

    @Override
    public long write(ByteBuffer[] srcs, int offset, int length) {
        writeCalls++;
        long n = 0;
        for (int i = offset; i < offset + length; i++) {
            int r = srcs[i].remaining();
            byte[] b = new byte[r];
            srcs[i].get(b);
            out.write(b, 0, r);
            n += r;
        }
        return n;
    }

    @Override
    public long write(ByteBuffer[] srcs) {
        return write(srcs, 0, srcs.length);
    }

    @Override
    public boolean isOpen() {
        return open;
    }

    @Override
    public void close() {
        open = false;
    }

    /** The written frames, each whole (header included). */
    List<byte[]> frames() {
        byte[] all = out.toByteArray();
        List<byte[]> list = new ArrayList<>();
        int at = 0;
        while (at + 4 <= all.length) {
            int len = ((all[at + 1] & 0xFF) << 16) | ((all[at + 2] & 0xFF) << 8) | (all[at + 3] & 0xFF);
            byte[] f = new byte[4 + len];
            System.arraycopy(all, at, f, 0, f.length);
            list.add(f);
            at += f.length;
        }
        if (at != all.length) {
            throw new AssertionError("trailing bytes after the last frame");
        }
        return list;
    }

    static byte[] frame(int type, byte[] payload) {
        byte[] f = new byte[4 + payload.length];
        f[0] = (byte) type;
        f[1] = (byte) (payload.length >>> 16);
        f[2] = (byte) (payload.length >>> 8);
        f[3] = (byte) payload.length;
        System.arraycopy(payload, 0, f, 4, payload.length);
        return f;
    }
}
