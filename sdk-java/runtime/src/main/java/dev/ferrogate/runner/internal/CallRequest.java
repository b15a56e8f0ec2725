package dev.ferrogate.runner.internal;

import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.internal.RequestState;
import dev.ferrogate.protocol.A6.ExtraInfo.Info;
import dev.ferrogate.protocol.A6.Method;
import java.nio.ByteBuffer;
import java.util.List;

/**
 * The request of one type-2 call, read lazily from the call's payload (checked up front by the
 * constructor, so later reads cannot fail), with variables and body asked over the connection.
 */
final class CallRequest extends RequestState {
    // Slots of A6.HTTPReqCall.Req.
    static final int ID = 0;
    static final int SRC_IP = 1;
    static final int METHOD = 2;
    static final int PATH = 3;
    static final int ARGS = 4;
    static final int HEADERS = 5;
    static final int CONF_TOKEN = 6;

    private final Connection conn;
    private final ByteBuffer bb;
    private final int table;
    private final long id;
    private final int method;
    private final int headersVec;
    private final int argsVec;
    private String path;
    private List<Field> headers;
    private List<Field> args;

    /** Checks the message; throws {@link BadMessage} when it is malformed. */
    CallRequest(Connection conn, ByteBuffer bb, int table) {
        this.conn = conn;
        this.bb = bb;
        this.table = table;
        this.id = Wire.u32Field(bb, table, ID);
        this.method = Wire.u8Field(bb, table, METHOD);
        if (method >= Method.names.length) {
            throw BadMessage.INSTANCE;
        }
        Wire.vector(bb, table, SRC_IP, 1);
        Wire.vector(bb, table, PATH, 1);
        this.argsVec = Wire.checkEntries(bb, table, ARGS);
        this.headersVec = Wire.checkEntries(bb, table, HEADERS);
    }

    long confToken() {
        return Wire.u32Field(bb, table, CONF_TOKEN);
    }

    @Override
    public long id() {
        return id;
    }

    @Override
    public byte[] sourceAddress() {
        byte[] b = Wire.bytes(bb, table, SRC_IP);
        return b == null ? new byte[0] : b;
    }

    @Override
    protected String sourceMethod() {
        return Method.names[method];
    }

    @Override
    protected String sourcePath() {
        if (path == null) {
            String p = Wire.string(bb, table, PATH);
            path = p == null ? "" : p;
        }
        return path;
    }

    @Override
    protected List<Field> sourceHeaders() {
        if (headers == null) {
            headers = Wire.entries(bb, headersVec);
        }
        return headers;
    }

    @Override
    protected String sourceHeader(String lowerName) {
        if (headers != null) {
            return super.sourceHeader(lowerName);
        }
        return Wire.firstValue(bb, headersVec, lowerName);
    }

    @Override
    protected List<Field> sourceArgs() {
        if (args == null) {
            args = Wire.entries(bb, argsVec);
        }
        return args;
    }

    @Override
    protected byte[][] fetchVars(String[] names) {
        return conn.askVars(names);
    }

    @Override
    protected byte[] fetchBody() {
        return conn.askBody(Info.ReqBody);
    }
}
