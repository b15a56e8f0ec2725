//! Consistent hashing ring.
//!
//! Every node puts virtual points on a 64-bit ring at `hash(host, port, i)`; a key goes to the node of
//! the first point at or after `hash(key)`, wrapping around. A retry walks on clockwise to the next
//! point whose node has not been tried, which is exactly where the key would land if the tried nodes
//! were removed. Because points depend only on a node's address, adding one node to N moves about
//! 1/(N+1) of the keys, all of them to the new node.
//!
//! Point counts: weights are divided by their greatest common divisor and each unit gets 160 points
//! (as in ketama and resty.chash). If that would exceed [`MAX_POINTS`] (65 536 points, 1 MiB) the
//! counts are instead scaled so the whole ring holds about `MAX_POINTS`, each node keeping at least
//! one point.
//!
//! The hash is 64-bit FNV-1a with murmur3's finaliser (`super::hash64`): fixed, so placement is the
//! same across builds and restarts. It is not APISIX's CRC32-based placement, so a key may land on a
//! different node than it would under APISIX; only stickiness and spread are promised.

use super::{hash64, Node, Skip};

/// Virtual points per unit of (gcd-normalised) weight.
const POINTS_PER_UNIT: u64 = 160;
/// Upper bound on the ring size, whatever the weights.
pub(crate) const MAX_POINTS: u64 = 65_536;

/// The ring of one priority group.
pub(crate) struct Ring {
    /// `(position, member position)`, sorted.
    points: Vec<(u64, u32)>,
}

impl Ring {
    /// A ring over `members` (indices into `nodes`, all with weight > 0 unless it is a lone node).
    pub(crate) fn new(nodes: &[Node], members: &[usize]) -> Ring {
        let weights: Vec<u64> = members
            .iter()
            .map(|&i| u64::from(nodes[i].weight.max(1)))
            .collect();
        let g = weights.iter().copied().fold(0, gcd).max(1);
        let units: u64 = weights.iter().map(|w| w / g).sum();
        let total: u64 = weights.iter().sum();
        let count = |w: u64| {
            if units.saturating_mul(POINTS_PER_UNIT) <= MAX_POINTS {
                w / g * POINTS_PER_UNIT
            } else {
                (w.saturating_mul(MAX_POINTS) / total.max(1)).max(1)
            }
        };
        let mut points = Vec::new();
        for (p, (&i, &w)) in members.iter().zip(&weights).enumerate() {
            let node = &nodes[i];
            let port = node.port.to_le_bytes();
            // Member positions fit in u32: a group larger than the ring bound is not a real upstream.
            let p = u32::try_from(p).unwrap_or(u32::MAX);
            for v in 0..count(w) {
                let pos = hash64(&[node.host.as_bytes(), b":", &port, b"#", &v.to_le_bytes()]);
                points.push((pos, p));
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The position in `members` for `key`, skipping members whose node is in `tried`.
    pub(crate) fn pick(&self, key: &str, members: &[usize], tried: &Skip<'_>) -> Option<usize> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let h = hash64(&[key.as_bytes()]);
        let start = self.points.partition_point(|&(pos, _)| pos < h);
        (0..len)
            .map(|k| self.points[(start + k) % len].1 as usize)
            .find(|&p| members.get(p).is_some_and(|n| !tried.contains(n)))
    }

    /// Number of virtual points on the ring.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.points.len()
    }
}

fn gcd(a: u64, b: u64) -> u64 {
    if b == 0 {
        a
    } else {
        gcd(b, a % b)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::node;
    use super::super::{Balancer, HashOn, Kind, Node};
    use super::*;

    fn chash(nodes: Vec<Node>) -> Balancer {
        Balancer::new(Kind::Chash(HashOn::Vars("uri".into())), nodes)
    }

    fn nodes(n: usize) -> Vec<Node> {
        (0..n).map(|i| node(&format!("10.0.0.{i}"), 1, 0)).collect()
    }

    #[test]
    fn same_key_same_node() {
        let a = chash(nodes(4));
        let b = chash(nodes(4));
        for k in 0..1000 {
            let key = format!("/user/{k}");
            let first = a.pick(Some(&key), &[]);
            assert!(first.is_some());
            assert_eq!(a.pick(Some(&key), &[]), first);
            assert_eq!(
                b.pick(Some(&key), &[]),
                first,
                "placement differs between rings"
            );
        }
    }

    #[test]
    fn keys_spread_over_nodes() {
        let b = chash(nodes(4));
        let mut counts = [0usize; 4];
        for k in 0..10_000 {
            counts[b.pick(Some(&format!("/user/{k}")), &[]).expect("a node")] += 1;
        }
        for c in counts {
            assert!((1_800..=3_200).contains(&c), "{counts:?}");
        }
    }

    #[test]
    fn weights_shape_the_share() {
        let b = chash(vec![node("a", 1, 0), node("b", 3, 0)]);
        let heavy = (0..10_000)
            .filter(|k| b.pick(Some(&format!("k{k}")), &[]) == Some(1))
            .count();
        assert!((6_800..=8_200).contains(&heavy), "{heavy}");
    }

    #[test]
    fn adding_a_fifth_node_moves_a_fifth_of_keys() {
        let four = chash(nodes(4));
        let five = chash(nodes(5));
        let mut moved = 0;
        for k in 0..10_000 {
            let key = format!("/item/{k}");
            let before = four.pick(Some(&key), &[]);
            let after = five.pick(Some(&key), &[]);
            if before != after {
                moved += 1;
                assert_eq!(after, Some(4), "a key moved between old nodes");
            }
        }
        assert!((1_000..=3_000).contains(&moved), "moved {moved}");
    }

    #[test]
    fn retry_walks_to_where_the_key_would_go_without_the_tried_node() {
        let all = chash(nodes(4));
        for k in 0..500 {
            let key = format!("/r/{k}");
            let first = all.pick(Some(&key), &[]).expect("a node");
            let second = all.pick(Some(&key), &[first]).expect("another node");
            assert_ne!(first, second);
            let without: Vec<Node> = nodes(4)
                .into_iter()
                .enumerate()
                .filter(|&(i, _)| i != first)
                .map(|(_, n)| n)
                .collect();
            let smaller = chash(without.clone());
            let want = smaller.pick(Some(&key), &[]).expect("a node");
            assert_eq!(all.nodes()[second], without[want]);
        }
    }

    #[test]
    fn no_key_round_robins() {
        let b = chash(nodes(3));
        let seq: Vec<usize> = (0..6).filter_map(|_| b.pick(None, &[])).collect();
        assert_eq!(seq, vec![0, 1, 2, 0, 1, 2]);
    }

    #[test]
    fn ring_size_is_bounded() {
        let ns: Vec<Node> = (0..3)
            .map(|i| node(&format!("h{i}"), 1_000 + i, 0))
            .collect();
        let ring = Ring::new(&ns, &[0, 1, 2]);
        assert!(ring.len() as u64 <= MAX_POINTS + 3, "{}", ring.len());
        assert!(ring.len() as u64 >= MAX_POINTS - 3, "{}", ring.len());
        // gcd normalisation: weights 10:20 use 160 + 320 points.
        let ns = vec![node("a", 10, 0), node("b", 20, 0)];
        assert_eq!(Ring::new(&ns, &[0, 1]).len(), 480);
    }
}
