//! The client address a plugin sets for the rest of a request ([`crate::RequestCtx::set_client`],
//! the `real-ip` plugin): the context and the gateway's request variables share one
//! [`ClientAddr`], so `remote_addr` and `remote_port` answer it from then on, and the gateway
//! names it upstream and in the logs.

use std::net::IpAddr;
use std::sync::Mutex;

/// The address (and maybe port) set for the client; empty until a plugin sets one. A lock, not
/// a once-cell, since `real-ip` may run twice (a global rule and the route); it is only taken
/// when a plugin sets the address or `remote_addr` / `remote_port` is read.
#[derive(Debug, Default)]
pub struct ClientAddr(Mutex<Option<(IpAddr, Option<u16>)>>);

impl ClientAddr {
    /// The address set, if any.
    pub fn get(&self) -> Option<IpAddr> {
        self.0.lock().ok().and_then(|g| g.map(|(ip, _)| ip))
    }

    /// The port set, if any.
    pub fn port(&self) -> Option<u16> {
        self.0
            .lock()
            .ok()
            .and_then(|g| g.and_then(|(_, port)| port))
    }

    /// Sets the address; without a port, one set before stays (as APISIX's `set_real_ip`).
    pub(crate) fn set(&self, addr: IpAddr, port: Option<u16>) {
        if let Ok(mut slot) = self.0.lock() {
            let port = port.or_else(|| slot.and_then(|(_, p)| p));
            *slot = Some((addr, port));
        }
    }
}

impl Clone for ClientAddr {
    fn clone(&self) -> ClientAddr {
        ClientAddr(Mutex::new(self.0.lock().ok().and_then(|g| *g)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn set_and_read() {
        let addr = ClientAddr::default();
        assert_eq!((addr.get(), addr.port()), (None, None));
        addr.set("2001:db8::1".parse().expect("ip"), None);
        assert_eq!(addr.get(), "2001:db8::1".parse().ok());
        assert_eq!(addr.port(), None);
        addr.set("10.9.9.9".parse().expect("ip"), Some(7090));
        addr.set("10.9.9.8".parse().expect("ip"), None);
        assert_eq!(addr.get(), "10.9.9.8".parse().ok(), "set again");
        assert_eq!(addr.clone().port(), Some(7090), "the port set stays");
    }
}
