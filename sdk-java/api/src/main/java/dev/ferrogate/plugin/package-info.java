/**
 * The plugin API of the Ferrogate Java SDK: what a plugin author implements and calls.
 *
 * <p>A plugin is one class implementing {@link dev.ferrogate.plugin.Plugin}, registered for
 * {@link java.util.ServiceLoader} in {@code META-INF/services/dev.ferrogate.plugin.Plugin}. The
 * runner (module {@code ferrogate-runner}) finds it there, parses its conf once per prepare, and
 * calls its filters for each request or response the gateway sends.
 *
 * <ul>
 *   <li>{@link dev.ferrogate.plugin.Request}: the request as the plugin sees it (after the rewrites
 *       of earlier plugins in the chain) and the rewrites it asks for.</li>
 *   <li>{@link dev.ferrogate.plugin.Response}: the answer of the request phase; giving it a status
 *       or a body (or calling {@code stop()}) answers the client and ends the chain.</li>
 *   <li>{@link dev.ferrogate.plugin.UpstreamResponse}: the response phase: the upstream's status,
 *       headers and body, and what to change in them.</li>
 *   <li>{@link dev.ferrogate.plugin.Field}: one name/value entry (a header or a query argument).</li>
 * </ul>
 *
 * <p>Package {@code dev.ferrogate.plugin.testing} has in-memory implementations for unit tests;
 * {@code dev.ferrogate.plugin.internal} is shared with the runner and is not API.
 */
package dev.ferrogate.plugin;
