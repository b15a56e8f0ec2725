// Package runtime is the Go runner: what the public packages plugin, runner and plugintest are
// made of. It serves the runner protocol on accepted connections, one goroutine per connection,
// calls strictly in order, everything a call needs reused across the connection's calls.
//
// Layout:
//   - server.go: Serve, the accept loop and shutdown (close every connection, wait for them).
//   - conn.go: one connection: dispatch by message type, run a conf's plugin chain, encode the
//     replies (errors as type 0 frames), extra-info questions (pipelined) and their answers.
//   - confcache.go: conf tokens -> prepared plugin chains, idempotent per gateway key, expiring.
//   - registry.go: plugins by name, each a parser from a conf value to a Bound (plugin + conf).
//   - request.go, response.go, stop.go: what a filter sees and changes; decoded lazily from the
//     call's FlatBuffers payload.
//   - fields.go: ordered name/value lists (headers, args) that record which names changed.
//   - extra.go: the per-call cache of variables and bodies asked from the gateway.
//   - ctx.go: the call's context, whose timer exists only if a plugin waits on it.
//   - local.go: requests and responses without a gateway, for plugintest.
//
// Package plugin declares Request, UpstreamResponse and Fields as its own types over the ones here
// (a pointer conversion, no copy) with methods that call these, so that its documentation lists
// them; Bound receives the types of this package.
package runtime
