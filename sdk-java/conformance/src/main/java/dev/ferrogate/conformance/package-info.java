/**
 * The conformance plugin set (tests/conformance/PLUGINS.md) written with the SDK; the module's jar
 * {@code target/ferrogate-conformance-runner.jar} is the runner the gateway's conformance suite starts.
 */
package dev.ferrogate.conformance;
