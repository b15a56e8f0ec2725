//! Node selection for one upstream (APISIX `upstream.type`).
//!
//! A [`Balancer`] owns the normalised node list of one upstream and is shared by every request through
//! it. Nodes are split into priority groups (highest `priority` first); a pick looks at the first group
//! that still has a node not in `tried`, so lower groups (e.g. negative-priority backups) are used only
//! once every node above them has been tried. Nodes of weight 0 are never picked, except when the
//! upstream has a single node.
//!
//! Within a group one of four algorithms decides:
//!
//! - [`Kind::RoundRobin`] (`roundrobin.rs`): nginx's smooth weighted round robin — every pick adds each
//!   node's weight to its running score, takes the highest score and subtracts the total weight from
//!   it, which interleaves heavy nodes instead of sending them bursts. Equal weights use a lock-free
//!   rotating counter instead.
//! - [`Kind::Chash`] (`chash.rs`): a consistent-hash ring with virtual points proportional to weight; a
//!   key maps to the first point clockwise from its hash, and retries walk on clockwise to the next
//!   untried node. Adding one node to N moves about 1/(N+1) of the keys. Without a key it behaves
//!   like round robin.
//! - [`Kind::LeastConn`] (`least_conn.rs`): the node with the lowest `(active + 1) / weight`, where
//!   `active` counts requests between [`Balancer::on_start`] and [`Balancer::on_finish`]; the scan
//!   starts at a rotating offset so ties are spread.
//! - [`Kind::Ewma`] (`ewma.rs`): peak-EWMA of the latency to response headers (10 s decay), scored as
//!   `ewma * (active + 1)`; two random untried nodes are compared and the lower score wins ("power of
//!   two choices"). Nodes without samples score 0, so new nodes are tried.
//!
//! Health (see `super::health`): when the upstream has health checks, a pick first skips the nodes
//! that are unhealthy, exactly as if they had been tried (so the priority group rule and chash's
//! clockwise walk apply unchanged). When that leaves nothing — every node unhealthy, or every
//! healthy one tried — the pick is made again ignoring health: APISIX's "all unhealthy: use all
//! nodes", extended to retries so a request is never refused while some node is left untried.
//!
//! The single-node upstream is a fast path for every algorithm: no lock, no atomics beyond the
//! in-flight counter.

mod chash;
mod ewma;
mod least_conn;
mod roundrobin;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::health::NodeHealth;

pub use model::HashOn;

use chash::Ring;
use ewma::EwmaState;
pub use ewma::Latencies;
use roundrobin::RoundRobin;

/// One upstream node after normalisation (map form `"host:port": weight` or array form).
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// Port, already defaulted from the scheme when the config omitted it.
    pub port: u16,
    /// Relative weight; 0 means "never picked" unless this is the upstream's only node.
    pub weight: u32,
    /// Priority group; higher groups are used first, lower ones only once all higher nodes were tried.
    pub priority: i32,
}

pub use model::expr::Vars;

/// The balancing algorithm of an upstream (APISIX `type`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    /// `roundrobin`: smooth weighted round robin.
    RoundRobin,
    /// `chash`: consistent hashing on the key described by [`HashOn`].
    Chash(HashOn),
    /// `least_conn`: fewest in-flight requests per unit of weight.
    LeastConn,
    /// `ewma`: lowest peak-EWMA latency, power of two random choices.
    Ewma,
}

/// Which per-group picker a balancer runs.
enum Algo {
    RoundRobin,
    Chash,
    LeastConn,
    Ewma,
}

/// Nodes of one priority, in node-index order, weight-0 nodes removed.
struct Group {
    /// Indices into [`Balancer::nodes`].
    members: Vec<usize>,
    /// Round robin state; also the key-less fallback of chash.
    rr: RoundRobin,
    /// The hash ring (chash only).
    ring: Option<Ring>,
}

/// Picks nodes for one upstream.
///
/// Shared by all requests through that upstream (`Send + Sync`, behind an `Arc`). State is kept in
/// atomics and short `std` mutexes that are never held across an `.await`.
pub struct Balancer {
    nodes: Vec<Node>,
    algo: Algo,
    hash_on: Option<HashOn>,
    /// Priority groups, highest priority first; empty groups are dropped.
    groups: Vec<Group>,
    /// In-flight requests per node (least_conn and ewma scoring).
    active: Vec<AtomicUsize>,
    /// Latency state per node (ewma only; empty otherwise).
    ewma: Vec<Arc<EwmaState>>,
    /// Rotating offset for least_conn ties and the seed sequence of ewma's random choices.
    ticket: AtomicU64,
    /// Time origin for ewma timestamps.
    epoch: std::time::Instant,
    /// Health per node, by index (empty without health checks).
    health: Vec<Arc<NodeHealth>>,
}

/// The nodes a pick must not return: those tried, and (first pass) the unhealthy ones.
pub(crate) struct Skip<'a> {
    tried: &'a [usize],
    down: &'a [Arc<NodeHealth>],
}

impl Skip<'_> {
    /// Whether node `i` is out.
    pub(crate) fn contains(&self, i: &usize) -> bool {
        self.tried.contains(i) || self.down.get(*i).is_some_and(|h| !h.is_healthy())
    }
}

impl Balancer {
    /// Builds a balancer of `kind` over `nodes` (indices into `nodes` identify nodes from now on).
    pub fn new(kind: Kind, nodes: Vec<Node>) -> Balancer {
        let (algo, hash_on) = match kind {
            Kind::RoundRobin => (Algo::RoundRobin, None),
            Kind::Chash(h) => (Algo::Chash, Some(h)),
            Kind::LeastConn => (Algo::LeastConn, None),
            Kind::Ewma => (Algo::Ewma, None),
        };
        let single = nodes.len() == 1;
        let mut priorities: Vec<i32> = nodes.iter().map(|n| n.priority).collect();
        priorities.sort_unstable_by(|a, b| b.cmp(a));
        priorities.dedup();
        let groups = priorities
            .into_iter()
            .filter_map(|p| {
                let members: Vec<usize> = nodes
                    .iter()
                    .enumerate()
                    .filter(|(_, n)| n.priority == p && (n.weight > 0 || single))
                    .map(|(i, _)| i)
                    .collect();
                if members.is_empty() {
                    return None;
                }
                // The single-node case may carry weight 0; treat it as 1 so the arithmetic stays sane.
                let weights: Vec<u32> = members.iter().map(|&i| nodes[i].weight.max(1)).collect();
                let ring = matches!(algo, Algo::Chash).then(|| Ring::new(&nodes, &members));
                Some(Group {
                    rr: RoundRobin::new(&weights),
                    members,
                    ring,
                })
            })
            .collect();
        let active = nodes.iter().map(|_| AtomicUsize::new(0)).collect();
        let ewma = if matches!(algo, Algo::Ewma) {
            nodes.iter().map(|_| Arc::default()).collect()
        } else {
            Vec::new()
        };
        Balancer {
            nodes,
            algo,
            hash_on,
            groups,
            active,
            ewma,
            ticket: AtomicU64::new(0),
            epoch: std::time::Instant::now(),
            health: Vec::new(),
        }
    }

    /// Makes an ewma balancer keep its latency averages in `shared`, by node address, so that
    /// other balancers with the same nodes see and feed the same averages (no-op for other kinds).
    pub fn with_latencies(mut self, shared: &Latencies) -> Balancer {
        if matches!(self.algo, Algo::Ewma) {
            self.ewma = self
                .nodes
                .iter()
                .map(|n| shared.state(&format!("{}:{}", n.host, n.port)))
                .collect();
            self.epoch = shared.epoch();
        }
        self
    }

    /// Makes picks skip nodes whose `health` (one per node, in node order) is unhealthy.
    pub fn with_health(mut self, health: Vec<Arc<NodeHealth>>) -> Balancer {
        self.health = health;
        self
    }

    /// The nodes this balancer picks from, in the order given to [`Balancer::new`].
    pub fn nodes(&self) -> &[Node] {
        &self.nodes
    }

    /// Where the chash key comes from, for chash balancers.
    pub fn hash_on(&self) -> Option<&HashOn> {
        self.hash_on.as_ref()
    }

    /// Picks a node index not in `tried`. `hash_key` is used by chash only.
    ///
    /// Nodes of the highest priority come first; a lower group is used only when every node of all
    /// higher groups is in `tried`. Weight-0 nodes are never picked, except when the upstream has a
    /// single node. Unhealthy nodes are picked only when no healthy untried node is left.
    /// Returns `None` when nothing is left.
    pub fn pick(&self, hash_key: Option<&str>, tried: &[usize]) -> Option<usize> {
        if self.nodes.len() == 1 {
            return (!tried.contains(&0)).then_some(0);
        }
        if self.health.iter().any(|h| !h.is_healthy()) {
            let healthy_only = Skip {
                tried,
                down: &self.health,
            };
            if let Some(i) = self.pick_skipping(hash_key, &healthy_only) {
                return Some(i);
            }
        }
        self.pick_skipping(hash_key, &Skip { tried, down: &[] })
    }

    fn pick_skipping(&self, hash_key: Option<&str>, tried: &Skip<'_>) -> Option<usize> {
        let group = self
            .groups
            .iter()
            .find(|g| g.members.iter().any(|i| !tried.contains(i)))?;
        // Every picker returns a position inside `group.members`.
        let pos = match self.algo {
            Algo::RoundRobin => group.rr.pick(&group.members, tried),
            Algo::Chash => match (hash_key, &group.ring) {
                (Some(key), Some(ring)) => ring.pick(key, &group.members, tried),
                _ => group.rr.pick(&group.members, tried),
            },
            Algo::LeastConn => least_conn::pick(self, group, tried),
            Algo::Ewma => ewma::pick(self, group, tried),
        }?;
        group.members.get(pos).copied()
    }

    /// Called when a request starts on node `idx` (least_conn in-flight count; ewma start).
    pub fn on_start(&self, idx: usize) {
        if let Some(a) = self.active.get(idx) {
            a.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Called when a request on node `idx` ends, with the latency to response headers, or `None` when
    /// the attempt failed (ewma then records a penalty sample, see `ewma.rs`).
    pub fn on_finish(&self, idx: usize, latency: Option<Duration>) {
        if let Some(a) = self.active.get(idx) {
            // Saturating: an unmatched on_finish must not wrap the counter.
            let _ = a.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |n| n.checked_sub(1));
        }
        if let Some(state) = self.ewma.get(idx) {
            state.record(latency, self.now_nanos());
        }
    }

    /// In-flight requests on node `idx` (0 for an unknown index).
    pub fn active(&self, idx: usize) -> usize {
        self.active
            .get(idx)
            .map_or(0, |a| a.load(Ordering::Relaxed))
    }

    fn now_nanos(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_nanos()).unwrap_or(u64::MAX)
    }

    /// Next value of the shared ticket counter (tie rotation, random seeds).
    fn next_ticket(&self) -> u64 {
        self.ticket.fetch_add(1, Ordering::Relaxed)
    }
}

/// murmur3's 64-bit finaliser: a cheap bijective mixer.
pub(crate) fn fmix64(mut h: u64) -> u64 {
    h ^= h >> 33;
    h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
    h ^= h >> 33;
    h = h.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    h ^= h >> 33;
    h
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn node(host: &str, weight: u32, priority: i32) -> Node {
        Node {
            host: host.to_string(),
            port: 80,
            weight,
            priority,
        }
    }

    fn all_kinds() -> [(&'static str, Kind); 4] {
        [
            ("roundrobin", Kind::RoundRobin),
            ("chash", Kind::Chash(HashOn::Vars("uri".into()))),
            ("least_conn", Kind::LeastConn),
            ("ewma", Kind::Ewma),
        ]
    }

    #[test]
    fn backup_group_only_after_primaries_tried() {
        for (name, kind) in all_kinds() {
            let b = Balancer::new(
                kind.clone(),
                vec![
                    node("backup", 1, -1),
                    node("p1", 1, 0),
                    node("p2", 1, 0),
                    node("top", 1, 5),
                ],
            );
            for k in 0..50 {
                let key = format!("/k{k}");
                assert_eq!(b.pick(Some(&key), &[]), Some(3), "{name}");
                assert_eq!(b.pick(None, &[]), Some(3), "{name}");
                let second = b.pick(Some(&key), &[3]);
                assert!(matches!(second, Some(1 | 2)), "{name}: {second:?}");
                let third = b.pick(Some(&key), &[3, second.unwrap_or(0)]);
                assert!(third.is_some() && third != second, "{name}");
                assert!(matches!(third, Some(1 | 2)), "{name}: {third:?}");
                assert_eq!(b.pick(Some(&key), &[1, 2, 3]), Some(0), "{name}");
                assert_eq!(b.pick(Some(&key), &[0, 1, 2, 3]), None, "{name}");
            }
        }
    }

    #[test]
    fn weight_zero_never_picked() {
        for (name, kind) in all_kinds() {
            let b = Balancer::new(
                kind.clone(),
                vec![node("a", 0, 0), node("b", 3, 0), node("c", 0, 0)],
            );
            for k in 0..200 {
                let key = format!("/k{k}");
                assert_eq!(b.pick(Some(&key), &[]), Some(1), "{name}");
                assert_eq!(b.pick(None, &[]), Some(1), "{name}");
            }
            assert_eq!(b.pick(None, &[1]), None, "{name}");
            // A weight-0 primary does not hide the backup.
            let b = Balancer::new(kind.clone(), vec![node("a", 0, 1), node("b", 1, 0)]);
            assert_eq!(b.pick(Some("/x"), &[]), Some(1), "{name}");
        }
    }

    #[test]
    fn single_node_is_picked_even_with_weight_zero() {
        for (name, kind) in all_kinds() {
            let b = Balancer::new(kind.clone(), vec![node("only", 0, 0)]);
            assert_eq!(b.pick(Some("/x"), &[]), Some(0), "{name}");
            assert_eq!(b.pick(None, &[0]), None, "{name}");
        }
    }

    #[test]
    fn empty_upstream_picks_nothing() {
        for (name, kind) in all_kinds() {
            let b = Balancer::new(kind.clone(), Vec::new());
            assert_eq!(b.pick(Some("/x"), &[]), None, "{name}");
        }
    }

    #[test]
    fn every_node_reachable_through_retries() {
        for (name, kind) in all_kinds() {
            let b = Balancer::new(
                kind.clone(),
                (0..6).map(|i| node(&format!("n{i}"), i + 1, 0)).collect(),
            );
            let mut tried = Vec::new();
            while let Some(i) = b.pick(Some("/same"), &tried) {
                assert!(!tried.contains(&i), "{name}: {i} picked twice");
                tried.push(i);
            }
            tried.sort_unstable();
            assert_eq!(tried, vec![0, 1, 2, 3, 4, 5], "{name}");
        }
    }

    #[test]
    fn active_counts_start_and_finish() {
        let b = Balancer::new(Kind::LeastConn, vec![node("a", 1, 0), node("b", 1, 0)]);
        b.on_start(1);
        b.on_start(1);
        assert_eq!(b.active(1), 2);
        b.on_finish(1, None);
        b.on_finish(1, None);
        b.on_finish(1, None);
        assert_eq!(b.active(1), 0, "unmatched finish must not wrap");
        b.on_start(99);
        b.on_finish(99, None);
    }

    #[test]
    fn balancer_is_send_sync() {
        fn assert_send_sync<T: Send + Sync>() {}
        assert_send_sync::<Balancer>();
    }

    #[test]
    fn shared_across_threads_keeps_exact_weights() {
        let b = std::sync::Arc::new(Balancer::new(
            Kind::RoundRobin,
            vec![node("a", 1, 0), node("b", 2, 0), node("c", 7, 0)],
        ));
        let handles: Vec<_> = (0..4)
            .map(|_| {
                let b = std::sync::Arc::clone(&b);
                std::thread::spawn(move || {
                    let mut counts = [0usize; 3];
                    for _ in 0..2_500 {
                        counts[b.pick(None, &[]).expect("a node")] += 1;
                    }
                    counts
                })
            })
            .collect();
        let mut total = [0usize; 3];
        for h in handles {
            let counts = h.join().expect("picker thread");
            for (t, c) in total.iter_mut().zip(counts) {
                *t += c;
            }
        }
        // 10 000 picks are 1 000 full rounds of the smooth algorithm, whatever the interleaving.
        assert_eq!(total, [1_000, 2_000, 7_000]);
    }

    fn healths(n: usize) -> Vec<Arc<NodeHealth>> {
        (0..n)
            .map(|i| Arc::new(NodeHealth::new(format!("n{i}"), 80)))
            .collect()
    }

    fn eject(h: &NodeHealth) {
        let limits = super::super::health::Thresholds {
            successes: 1,
            http_failures: 1,
            tcp_failures: 1,
            timeouts: 1,
        };
        h.report(super::super::health::Outcome::TcpFailure, &limits);
        assert!(!h.is_healthy());
    }

    #[test]
    fn unhealthy_nodes_are_skipped_by_every_kind() {
        for (name, kind) in all_kinds() {
            let health = healths(3);
            let b = Balancer::new(
                kind.clone(),
                vec![node("a", 1, 0), node("b", 5, 0), node("c", 1, 0)],
            )
            .with_health(health.clone());
            eject(&health[1]);
            for k in 0..100 {
                let key = format!("/k{k}");
                let first = b.pick(Some(&key), &[]);
                assert!(matches!(first, Some(0 | 2)), "{name}: {first:?}");
                // A retry still prefers the other healthy node ...
                let other = if first == Some(0) { 2 } else { 0 };
                assert_eq!(
                    b.pick(Some(&key), &[first.unwrap_or(0)]),
                    Some(other),
                    "{name}"
                );
                // ... and reaches the unhealthy one only when nothing else is left.
                assert_eq!(b.pick(Some(&key), &[0, 2]), Some(1), "{name}");
            }
        }
    }

    #[test]
    fn all_unhealthy_uses_all_nodes() {
        for (name, kind) in all_kinds() {
            let health = healths(3);
            let b = Balancer::new(
                kind.clone(),
                vec![node("a", 1, 0), node("b", 1, 0), node("c", 1, 0)],
            )
            .with_health(health.clone());
            health.iter().for_each(|h| eject(h));
            let mut seen = [false; 3];
            for k in 0..200 {
                let i = b.pick(Some(&format!("/k{k}")), &[]).expect("a node");
                seen[i] = true;
            }
            assert_eq!(seen, [true; 3], "{name}");
        }
    }

    #[test]
    fn unhealthy_primaries_hand_over_to_the_backup_group() {
        for (name, kind) in all_kinds() {
            let health = healths(3);
            let b = Balancer::new(
                kind.clone(),
                vec![node("p1", 1, 1), node("p2", 1, 1), node("backup", 1, 0)],
            )
            .with_health(health.clone());
            eject(&health[0]);
            assert_eq!(b.pick(Some("/x"), &[]), Some(1), "{name}");
            eject(&health[1]);
            assert_eq!(b.pick(Some("/x"), &[]), Some(2), "{name}");
            eject(&health[2]);
            // Everything down: the highest group again.
            assert!(matches!(b.pick(Some("/x"), &[]), Some(0 | 1)), "{name}");
        }
    }

    #[test]
    fn chash_moves_only_the_keys_of_an_unhealthy_node() {
        let health = healths(4);
        let nodes: Vec<Node> = (0..4).map(|i| node(&format!("10.0.0.{i}"), 1, 0)).collect();
        let b = Balancer::new(Kind::Chash(HashOn::Vars("uri".into())), nodes)
            .with_health(health.clone());
        let before: Vec<Option<usize>> = (0..1000)
            .map(|k| b.pick(Some(&format!("/u/{k}")), &[]))
            .collect();
        eject(&health[2]);
        for (k, was) in before.iter().enumerate() {
            let now = b.pick(Some(&format!("/u/{k}")), &[]);
            if *was == Some(2) {
                assert_ne!(now, Some(2));
            } else {
                assert_eq!(now, *was, "a key of a healthy node moved");
            }
        }
    }
}
