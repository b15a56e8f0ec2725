package dev.ferrogate.tests;

import java.nio.file.Path;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.concurrent.atomic.AtomicBoolean;

/**
 * A load generator speaking the protocol straight to a runner (no gateway): C connections each
 * sending request calls back to back for S seconds, with a conf that rewrites one header. Not a
 * test; run by hand against any runner serving a plugin of that name:
 *
 * <pre>
 * cd sdk-java &amp;&amp; mvn -q test-compile dependency:build-classpath -pl tests -am -Dmdep.outputFile=target/cp.txt
 * java -cp "$(cat tests/target/cp.txt):tests/target/test-classes" dev.ferrogate.tests.CallBench \
 *     /tmp/runner.sock conf-rewrite '{"headers":[["x-bench","1"]]}' 8 10
 * </pre>
 */
public final class CallBench {
    public static void main(String[] args) throws Exception {
        Path sock = Path.of(args[0]);
        String plugin = args[1];
        String conf = args[2];
        int conns = Integer.parseInt(args[3]);
        int seconds = Integer.parseInt(args[4]);
        long token;
        try (GatewayClient c = new GatewayClient(sock)) {
            token = c.prepare(plugin, conf);
        }
        byte[] frame;
        {
            GatewayClient.Call call = new GatewayClient.Call().path("/bench").header("host", "example.com")
                .header("user-agent", "bench").header("accept", "*/*").arg("q", "1");
            byte[] payload = GatewayClient.requestMessage(call, token);
            frame = new byte[4 + payload.length];
            frame[0] = 2;
            frame[1] = (byte) (payload.length >>> 16);
            frame[2] = (byte) (payload.length >>> 8);
            frame[3] = (byte) payload.length;
            System.arraycopy(payload, 0, frame, 4, payload.length);
        }
        AtomicBoolean stop = new AtomicBoolean();
        List<Thread> threads = new ArrayList<>();
        long[][] lat = new long[conns][];
        int[] counts = new int[conns];
        for (int i = 0; i < conns; i++) {
            int k = i;
            Thread t = new Thread(() -> {
                long[] l = new long[1 << 22];
                int n = 0;
                try (GatewayClient c = new GatewayClient(sock)) {
                    java.nio.ByteBuffer out = java.nio.ByteBuffer.wrap(frame);
                    while (!stop.get()) {
                        long t0 = System.nanoTime();
                        out.clear();
                        while (out.hasRemaining()) {
                            c.ch.write(out);
                        }
                        GatewayClient.Frame f = c.read();
                        if (f.type() != 2) {
                            throw new IllegalStateException("reply type " + f.type());
                        }
                        if (n < l.length) {
                            l[n] = System.nanoTime() - t0;
                        }
                        n++;
                    }
                } catch (Exception e) {
                    throw new RuntimeException(e);
                }
                counts[k] = n;
                lat[k] = Arrays.copyOf(l, Math.min(n, l.length));
            });
            threads.add(t);
        }
        threads.forEach(Thread::start);
        Thread.sleep(seconds * 1000L);
        stop.set(true);
        for (Thread t : threads) {
            t.join();
        }
        long total = Arrays.stream(counts).sum();
        long[] all = Arrays.stream(lat).flatMapToLong(Arrays::stream).sorted().toArray();
        System.out.printf("%d calls in %d s on %d connections: %.0f calls/s, p50 %.1f us, p99 %.1f us%n",
            total, seconds, conns, total / (double) seconds,
            all[all.length / 2] / 1000.0, all[(int) (all.length * 0.99)] / 1000.0);
    }
}
