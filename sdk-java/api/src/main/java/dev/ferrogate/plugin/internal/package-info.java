/**
 * Not API: the request/response state shared by the runner and the test doubles. Its classes are
 * public only so that module {@code ferrogate-runner} can extend them; they may change without notice.
 */
package dev.ferrogate.plugin.internal;
