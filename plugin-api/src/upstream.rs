//! Upstreams a plugin may send a request to instead of its route's.
//!
//! A kind declares, per checked config, the upstreams its instances may choose
//! ([`Kind::upstreams`](crate::Kind::upstreams)): stored ones by id and ones defined in the
//! config. The gateway resolves and builds them when it builds the snapshot, never per request;
//! a request only carries the plugin's choice, an [`UpstreamOverride`] set with
//! [`RequestCtx::choose_upstream`](crate::RequestCtx::choose_upstream): an index into the
//! declared list. The gateway honours it when it goes upstream, for the plugins of the matched
//! route (its service and plugin config merged in); a choice made by an instance whose declared
//! list differs from every list of the route's own plugins (a consumer's or a global rule's
//! config) is ignored.

use std::hash::{Hash, Hasher};

use model::{Id, Upstream};

/// One upstream a plugin may choose.
#[derive(Debug, Clone, PartialEq)]
pub enum UpstreamRef {
    /// A stored upstream, by id; it may not exist when the snapshot is built.
    Id(Id),
    /// An upstream defined in the plugin's config.
    Inline(Box<Upstream>),
}

/// The upstreams an instance may choose, in its order, with a fingerprint of the list that
/// ties a choice to it.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Upstreams {
    refs: Vec<UpstreamRef>,
    key: u64,
}

impl Upstreams {
    /// The list `refs`; choices index into it.
    pub fn new(refs: Vec<UpstreamRef>) -> Upstreams {
        let mut h = std::collections::hash_map::DefaultHasher::new();
        for r in &refs {
            match r {
                UpstreamRef::Id(id) => (0u8, &id.0).hash(&mut h),
                UpstreamRef::Inline(u) => {
                    (1u8, serde_json::to_string(u).unwrap_or_default()).hash(&mut h);
                }
            }
        }
        Upstreams {
            key: h.finish(),
            refs,
        }
    }

    /// The declared upstreams.
    pub fn refs(&self) -> &[UpstreamRef] {
        &self.refs
    }

    /// Whether nothing is declared.
    pub fn is_empty(&self) -> bool {
        self.refs.is_empty()
    }

    /// The fingerprint of the list (the same for equal lists).
    pub fn key(&self) -> u64 {
        self.key
    }

    /// A choice of the upstream at `index` in this list; `None` keeps the route's own.
    pub fn choose(&self, index: Option<usize>) -> UpstreamOverride {
        UpstreamOverride {
            key: self.key,
            index,
            required: 0,
        }
    }
}

/// A plugin's choice of upstream for one request (kept in the request state; the last one set
/// wins).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UpstreamOverride {
    key: u64,
    index: Option<usize>,
    required: usize,
}

impl UpstreamOverride {
    /// The choice holds only when the first `n` declared upstreams exist: a stored upstream
    /// among them that is missing fails the request with 500, whatever the choice.
    #[must_use]
    pub fn requiring(self, n: usize) -> UpstreamOverride {
        UpstreamOverride {
            required: n,
            ..self
        }
    }

    /// The fingerprint of the list chosen from ([`Upstreams::key`]).
    pub fn key(&self) -> u64 {
        self.key
    }

    /// The index chosen; `None`: the route's own upstream.
    pub fn index(&self) -> Option<usize> {
        self.index
    }

    /// How many of the first declared upstreams must exist.
    pub fn required(&self) -> usize {
        self.required
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn equal_lists_share_a_key() {
        let inline = |port: u16| {
            let u: Upstream = serde_json::from_value(
                serde_json::json!({"nodes": {format!("127.0.0.1:{port}"): 1}}),
            )
            .expect("upstream");
            UpstreamRef::Inline(Box::new(u))
        };
        let a = Upstreams::new(vec![UpstreamRef::Id(Id("1".into())), inline(1)]);
        let b = Upstreams::new(vec![UpstreamRef::Id(Id("1".into())), inline(1)]);
        let c = Upstreams::new(vec![UpstreamRef::Id(Id("1".into())), inline(2)]);
        assert_eq!(a.key(), b.key());
        assert_ne!(a.key(), c.key());
        assert_ne!(a.key(), Upstreams::default().key());
        let choice = a.choose(Some(1)).requiring(2);
        assert_eq!(
            (choice.key(), choice.index(), choice.required()),
            (a.key(), Some(1), 2)
        );
    }
}
