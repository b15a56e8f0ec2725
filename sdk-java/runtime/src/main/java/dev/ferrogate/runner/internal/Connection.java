package dev.ferrogate.runner.internal;

import com.google.flatbuffers.FlatBufferBuilder;
import dev.ferrogate.plugin.Field;
import dev.ferrogate.plugin.Plugin;
import dev.ferrogate.plugin.internal.Completions;
import dev.ferrogate.plugin.internal.ResponseState;
import dev.ferrogate.protocol.A6.ExtraInfo.Info;
import dev.ferrogate.protocol.A6.ExtraInfo.ReqBody;
import dev.ferrogate.protocol.A6.ExtraInfo.RespBody;
import dev.ferrogate.protocol.A6.ExtraInfo.Var;
import dev.ferrogate.protocol.A6.HTTPReqCall.Action;
import dev.ferrogate.protocol.A6.HTTPReqCall.Rewrite;
import dev.ferrogate.protocol.A6.HTTPReqCall.Stop;
import dev.ferrogate.protocol.A6.TextEntry;
import java.io.IOException;
import java.io.UncheckedIOException;
import java.lang.System.Logger;
import java.lang.System.Logger.Level;
import java.nio.ByteBuffer;
import java.nio.channels.ByteChannel;
import java.util.List;
import java.util.concurrent.CompletionStage;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.TimeoutException;

/**
 * One gateway connection: a strict sequence of calls, each answered exactly once (a reply of the
 * call's type, or an error frame of type 0), with any number of extra-info exchanges inside a
 * type-2 or type-4 call. Runs on its own thread; extra-info exchanges may come from a plugin's
 * thread while this one waits for the plugin, and are serialised on this object.
 */
public final class Connection implements Runnable {
    private static final Logger LOG = System.getLogger("dev.ferrogate.runner");

    private final ByteChannel channel;
    private final FrameIO io;
    private final Registry registry;
    private final ConfCache confs;
    private final long callTimeoutNanos;

    /** An extra-info exchange is allowed (a call is running). Guarded by this. */
    private boolean active;
    /** The stream is out of step (an exchange failed): close, never reply. Guarded by this. */
    private boolean broken;

    public Connection(ByteChannel channel, Registry registry, ConfCache confs, long callTimeoutNanos) {
        this.channel = channel;
        this.io = new FrameIO(channel);
        this.registry = registry;
        this.confs = confs;
        this.callTimeoutNanos = callTimeoutNanos;
    }

    @Override
    public void run() {
        try (channel) {
            while (true) {
                int type = io.readCall();
                if (type < 0) {
                    return;
                }
                ByteBuffer p = io.callPayload();
                switch (type) {
                    case FrameIO.TYPE_PREPARE -> prepare(p);
                    case FrameIO.TYPE_HTTP_REQ -> httpRequest(p);
                    case FrameIO.TYPE_HTTP_RESP -> httpResponse(p);
                    default -> {
                        LOG.log(Level.WARNING, "unexpected frame type {0}: answered BAD_REQUEST", type);
                        io.sendRaw(ErrorFrames.BAD_REQUEST);
                    }
                }
                if (isBroken()) {
                    return;
                }
            }
        } catch (IOException e) {
            LOG.log(Level.DEBUG, "connection closed: {0}", e.toString());
        } catch (RuntimeException e) {
            LOG.log(Level.ERROR, "connection dropped after an internal error", e);
        }
    }

    private synchronized boolean isBroken() {
        return broken;
    }

    // ---------------------------------------------------------------- prepare (type 1)

    private void prepare(ByteBuffer p) throws IOException {
        List<Field> entries;
        String key;
        try {
            int t = Wire.root(p);
            entries = Wire.entries(p, Wire.checkEntries(p, t, 0));
            key = Wire.string(p, t, 1);
        } catch (RuntimeException e) {
            io.sendRaw(ErrorFrames.BAD_REQUEST);
            return;
        }
        long known = confs.reuse(key, entries);
        if (known != 0) {
            replyToken(known);
            return;
        }
        ConfCache.Link[] chain = new ConfCache.Link[entries.size()];
        for (int i = 0; i < chain.length; i++) {
            Field e = entries.get(i);
            Plugin<Object> plugin = registry.get(e.name());
            if (plugin == null) {
                LOG.log(Level.WARNING, "prepare refused: no plugin named \"{0}\" (known: {1})", e.name(), registry.names());
                io.sendRaw(ErrorFrames.BAD_REQUEST);
                return;
            }
            Object conf;
            try {
                conf = plugin.parseConf(e.value() == null ? "" : e.value());
            } catch (Exception | LinkageError | AssertionError ex) {
                LOG.log(Level.WARNING, "prepare refused: plugin \"" + e.name() + "\" rejected its conf", ex);
                io.sendRaw(ErrorFrames.BAD_REQUEST);
                return;
            }
            chain[i] = new ConfCache.Link(plugin, conf);
        }
        replyToken(confs.put(key, entries, chain));
    }

    private void replyToken(long token) throws IOException {
        FlatBufferBuilder b = io.builder();
        b.finish(dev.ferrogate.protocol.A6.PrepareConf.Resp.createResp(b, token));
        io.send(FrameIO.TYPE_PREPARE);
    }

    // ---------------------------------------------------------------- http request (type 2)

    private void httpRequest(ByteBuffer p) throws IOException {
        CallRequest req;
        try {
            req = new CallRequest(this, p, Wire.root(p));
        } catch (RuntimeException e) {
            io.sendRaw(ErrorFrames.BAD_REQUEST);
            return;
        }
        ConfCache.Link[] chain = confs.get(req.confToken());
        if (chain == null) {
            io.sendRaw(ErrorFrames.CONF_TOKEN_NOT_FOUND);
            return;
        }
        ResponseState resp = new ResponseState();
        Throwable failure = null;
        String failed = null;
        begin();
        for (ConfCache.Link link : chain) {
            try {
                await(link.plugin().filterAsync(link.conf(), req, resp));
            } catch (Throwable e) {
                failure = e;
                failed = link.plugin().name();
                break;
            }
            if (resp.answered()) {
                break;
            }
        }
        if (!end()) {
            return;
        }
        if (failure != null) {
            fail(failed, req.id(), failure);
            return;
        }
        FlatBufferBuilder b = io.builder();
        byte actionType = Action.NONE;
        int action = 0;
        if (resp.answered()) {
            int headers = entries(b, resp.headers());
            int body = bytes(b, resp.body());
            action = Stop.createStop(b, resp.status(), headers, body);
            actionType = Action.Stop;
        } else if (req.rewritten() || !resp.headers().isEmpty()) {
            int path = req.pathRewrite() == null ? 0 : b.createString(req.pathRewrite());
            int headers = entries(b, req.headerRewrites());
            int args = entries(b, req.argRewrites());
            int respHeaders = entries(b, resp.headers());
            int body = bytes(b, req.bodyRewrite());
            action = Rewrite.createRewrite(b, path, headers, args, respHeaders, body);
            actionType = Action.Rewrite;
        }
        b.finish(dev.ferrogate.protocol.A6.HTTPReqCall.Resp.createResp(b, req.id(), actionType, action));
        sendReply(FrameIO.TYPE_HTTP_REQ, req.id());
    }

    // ---------------------------------------------------------------- http response (type 4)

    private void httpResponse(ByteBuffer p) throws IOException {
        CallUpstream up;
        try {
            up = new CallUpstream(this, p, Wire.root(p));
        } catch (RuntimeException e) {
            io.sendRaw(ErrorFrames.BAD_REQUEST);
            return;
        }
        ConfCache.Link[] chain = confs.get(up.confToken());
        if (chain == null) {
            io.sendRaw(ErrorFrames.CONF_TOKEN_NOT_FOUND);
            return;
        }
        Throwable failure = null;
        String failed = null;
        begin();
        for (ConfCache.Link link : chain) {
            try {
                await(link.plugin().responseFilterAsync(link.conf(), up));
            } catch (Throwable e) {
                failure = e;
                failed = link.plugin().name();
                break;
            }
        }
        if (!end()) {
            return;
        }
        if (failure != null) {
            fail(failed, up.id(), failure);
            return;
        }
        FlatBufferBuilder b = io.builder();
        List<Field> changed = up.headersChange();
        int headers = changed == null ? 0 : entries(b, changed);
        int body = bytes(b, up.bodyChange());
        b.finish(dev.ferrogate.protocol.A6.HTTPRespCall.Resp.createResp(b, up.id(), up.statusChange(), headers, body));
        sendReply(FrameIO.TYPE_HTTP_RESP, up.id());
    }

    // ---------------------------------------------------------------- call plumbing

    private synchronized void begin() {
        active = true;
    }

    /** Closes the call to extra info; false when the connection is out of step (no reply then). */
    private synchronized boolean end() {
        active = false;
        return !broken;
    }

    private void await(CompletionStage<Void> stage) throws Throwable {
        if (stage == Completions.DONE) {
            return;
        }
        try {
            stage.toCompletableFuture().get(callTimeoutNanos, TimeUnit.NANOSECONDS);
        } catch (ExecutionException e) {
            throw e.getCause() != null ? e.getCause() : e;
        } catch (TimeoutException e) {
            throw new TimeoutException("plugin did not complete within " + TimeUnit.NANOSECONDS.toMillis(callTimeoutNanos) + " ms");
        }
    }

    private void fail(String plugin, long id, Throwable failure) throws IOException {
        LOG.log(Level.WARNING, "plugin \"" + plugin + "\" failed on call " + id + ": answered SERVICE_UNAVAILABLE", failure);
        io.sendRaw(ErrorFrames.SERVICE_UNAVAILABLE);
        if (failure instanceof VirtualMachineError vme && !(failure instanceof StackOverflowError)) {
            throw vme;
        }
    }

    private void sendReply(int type, long id) throws IOException {
        if (!io.send(type)) {
            LOG.log(Level.WARNING, "reply to call {0} exceeds the 16 MiB frame limit: answered SERVICE_UNAVAILABLE", id);
            io.sendRaw(ErrorFrames.SERVICE_UNAVAILABLE);
        }
    }

    private static int entries(FlatBufferBuilder b, List<Field> list) {
        int n = list.size();
        if (n == 0) {
            return 0;
        }
        int[] offsets = new int[n];
        for (int i = 0; i < n; i++) {
            Field f = list.get(i);
            int name = b.createString(f.name());
            int value = f.value() == null ? 0 : b.createString(f.value());
            offsets[i] = TextEntry.createTextEntry(b, name, value);
        }
        return Rewrite.createHeadersVector(b, offsets);
    }

    private static int bytes(FlatBufferBuilder b, byte[] data) {
        return data == null || data.length == 0 ? 0 : b.createByteVector(data);
    }

    // ---------------------------------------------------------------- extra info (type 3)

    /** Asks the gateway for variables: every question in one write, then the answers in order. */
    synchronized byte[][] askVars(String[] names) {
        checkActive();
        try {
            for (String name : names) {
                FlatBufferBuilder b = io.builder();
                int n = b.createString(name);
                int v = Var.createVar(b, n);
                b.finish(dev.ferrogate.protocol.A6.ExtraInfo.Req.createReq(b, Info.Var, v));
                io.queue(FrameIO.TYPE_EXTRA_INFO);
            }
            io.flush();
            byte[][] out = new byte[names.length][];
            for (int i = 0; i < names.length; i++) {
                out[i] = readAnswer();
            }
            return out;
        } catch (IOException e) {
            broken = true;
            throw new UncheckedIOException(e);
        } catch (RuntimeException e) {
            broken = true;
            throw e;
        }
    }

    /** Asks the gateway for the request body ({@link Info#ReqBody}) or the upstream body ({@link Info#RespBody}). */
    synchronized byte[] askBody(byte info) {
        checkActive();
        try {
            FlatBufferBuilder b = io.builder();
            int off;
            if (info == Info.ReqBody) {
                ReqBody.startReqBody(b);
                off = ReqBody.endReqBody(b);
            } else {
                RespBody.startRespBody(b);
                off = RespBody.endRespBody(b);
            }
            b.finish(dev.ferrogate.protocol.A6.ExtraInfo.Req.createReq(b, info, off));
            io.send(FrameIO.TYPE_EXTRA_INFO);
            return readAnswer();
        } catch (IOException e) {
            broken = true;
            throw new UncheckedIOException(e);
        } catch (RuntimeException e) {
            broken = true;
            throw e;
        }
    }

    private void checkActive() {
        if (!active) {
            throw new IllegalStateException("extra info asked outside of a call (after the filter completed?)");
        }
        if (broken) {
            throw new IllegalStateException("connection to the gateway is broken");
        }
    }

    private byte[] readAnswer() throws IOException {
        int type = io.readInfo();
        if (type != FrameIO.TYPE_EXTRA_INFO) {
            throw new IOException("expected an extra-info answer (type 3), got type " + type);
        }
        ByteBuffer p = io.infoPayload();
        try {
            return Wire.bytes(p, Wire.root(p), 0);
        } catch (BadMessage e) {
            throw new IOException("malformed extra-info answer");
        }
    }
}
