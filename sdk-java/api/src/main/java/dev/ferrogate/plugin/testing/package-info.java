/**
 * In-memory requests and responses for unit-testing plugins without a gateway or a socket.
 *
 * <pre>{@code
 * TestRequest request = TestRequest.builder().path("/x").header("authorization", "t").var("remote_addr", "10.0.0.1").build();
 * TestResponse response = new TestResponse();
 * PluginTester.filter(new MyPlugin(), "{\"token\":\"t\"}", request, response);
 * assertFalse(response.answered());
 * assertEquals("/y", request.pathRewrite());
 * }</pre>
 */
package dev.ferrogate.plugin.testing;
