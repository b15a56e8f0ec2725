package dev.ferrogate.runner.internal;

import com.google.flatbuffers.FlatBufferBuilder;
import dev.ferrogate.protocol.A6.Err.Code;
import dev.ferrogate.protocol.A6.Err.Resp;

/** The three error replies, encoded once. */
final class ErrorFrames {
    static final byte[] BAD_REQUEST = frame(Code.BAD_REQUEST);
    static final byte[] SERVICE_UNAVAILABLE = frame(Code.SERVICE_UNAVAILABLE);
    static final byte[] CONF_TOKEN_NOT_FOUND = frame(Code.CONF_TOKEN_NOT_FOUND);

    private ErrorFrames() {
    }

    static byte[] frame(int code) {
        FlatBufferBuilder b = new FlatBufferBuilder(32);
        b.finish(Resp.createResp(b, code));
        byte[] payload = b.sizedByteArray();
        byte[] f = new byte[4 + payload.length];
        f[0] = FrameIO.TYPE_ERROR;
        f[1] = (byte) (payload.length >>> 16);
        f[2] = (byte) (payload.length >>> 8);
        f[3] = (byte) payload.length;
        System.arraycopy(payload, 0, f, 4, payload.length);
        return f;
    }
}
