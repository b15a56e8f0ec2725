package dev.ferrogate.runner.internal;

import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.internal.UpstreamState;
import dev.ferrogate.protocol.A6.ExtraInfo.Info;
import java.nio.ByteBuffer;
import java.util.List;

/** The upstream response of one type-4 call, read from the call's payload (checked up front). */
final class CallUpstream extends UpstreamState {
    // Slots of A6.HTTPRespCall.Req.
    static final int ID = 0;
    static final int STATUS = 1;
    static final int HEADERS = 2;
    static final int CONF_TOKEN = 3;

    private final Connection conn;
    private final ByteBuffer bb;
    private final long id;
    private final int status;
    private final int headersVec;
    private final long confToken;
    private List<Field> headers;

    CallUpstream(Connection conn, ByteBuffer bb, int table) {
        this.conn = conn;
        this.bb = bb;
        this.id = Wire.u32Field(bb, table, ID);
        this.status = Wire.u16Field(bb, table, STATUS);
        this.headersVec = Wire.checkEntries(bb, table, HEADERS);
        this.confToken = Wire.u32Field(bb, table, CONF_TOKEN);
    }

    long confToken() {
        return confToken;
    }

    @Override
    public long id() {
        return id;
    }

    @Override
    protected int sourceStatus() {
        return status;
    }

    @Override
    protected List<Field> sourceHeaders() {
        if (headers == null) {
            headers = Wire.entries(bb, headersVec);
        }
        return headers;
    }

    @Override
    protected byte[][] fetchVars(String[] names) {
        return conn.askVars(names);
    }

    @Override
    protected byte[] fetchBody() {
        return conn.askBody(Info.RespBody);
    }
}
