//! The attack suite: each way the gateway was once walked around or knocked over, tried again
//! as an attacker, an unlucky operator or a failing network would, against a real gateway over
//! real sockets. Every test asserts the safe behaviour and that normal traffic keeps working
//! during and after the attack. What the gateway promises is written in docs/security.md.
//!
//! Layout (one concern a module):
//! - `access_control`: path and Host normalisation shared by every security decision (mTLS
//!   skip paths, host routes behind auth), hop-by-hop headers stripped before plugins.
//! - `client_faults`: a client's own body errors never count against an upstream; request
//!   buffering, stream and connection caps, the client body timeout.
//! - `connections`: file-descriptor and connection limits, accept-error logging.
//! - `admin`: the Admin API from a browser (CORS, content type, Host), redaction of secrets,
//!   resource ids.
//! - `store`: data and socket directories, damaged store files, a broken standalone file.
//! - `tls`: client certificate chains and `client.depth`.
//! - `upstream_framing`: what an upstream's response framing cannot do to a client.

#[path = "../common/mod.rs"]
mod common;

mod access_control;
mod admin;
mod client_faults;
mod connections;
mod store;
mod tls;
mod upstream_framing;
