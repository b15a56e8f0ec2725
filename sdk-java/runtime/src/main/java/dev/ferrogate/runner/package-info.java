/**
 * The Ferrogate plugin runner: serves {@link dev.ferrogate.plugin.Plugin}s to the gateway over a
 * Unix domain socket with the APISIX ext-plugin protocol.
 *
 * <p>Start it as a process with {@link dev.ferrogate.runner.Main} (what the gateway's
 * {@code ext-plugin.cmd} runs), or embed it with {@link dev.ferrogate.runner.Runner#builder()}
 * (tests, custom launchers).
 *
 * <h2>Layout</h2>
 * <ul>
 *   <li>{@code Main}: the process entry: environment, plugin discovery, signals.</li>
 *   <li>{@code Runner}: the server: socket file, accept loop, one thread per connection, conf cache.</li>
 *   <li>{@code internal.Connection}: one connection's calls (prepare, request, response, extra info).</li>
 *   <li>{@code internal.FrameIO}: framing with reused buffers; {@code internal.Wire}: a bounds-checked
 *       reader of received messages; {@code internal.ConfCache}: tokens with expiry.</li>
 * </ul>
 */
package dev.ferrogate.runner;
