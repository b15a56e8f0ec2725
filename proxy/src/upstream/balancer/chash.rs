//! Consistent hashing ring, placing keys as APISIX's (lua-resty-balancer's `resty.chash`) does.
//!
//! Every node puts virtual points on a 32-bit ring; a key goes to the node of the first point at
//! or after the CRC32 of the key, wrapping around. A retry walks on clockwise to the next point
//! whose node has not been tried, which is exactly where the key would land if the tried nodes
//! were removed. Because points depend only on a node's address, adding one node to N moves about
//! 1/(N+1) of the keys, all of them to the new node.
//!
//! A node's points form a chain from its id (`host:port` with every `:` made a NUL byte, an IPv6
//! host in brackets): the first is the CRC32 of the id followed by four zero bytes, each next one
//! the CRC32 of the id followed by the previous point (little-endian).
//!
//! Point counts: weights are divided by their greatest common divisor and each unit gets 160 points
//! (as in resty.chash). If that would exceed [`MAX_POINTS`] (65 536 points, 512 KiB) the counts are
//! instead scaled so the whole ring holds about `MAX_POINTS`, each node keeping at least one point
//! (APISIX has no bound: only such rings place keys differently).

use super::{Node, Skip};

/// Virtual points per unit of (gcd-normalised) weight.
const POINTS_PER_UNIT: u64 = 160;
/// Upper bound on the ring size, whatever the weights.
pub(crate) const MAX_POINTS: u64 = 65_536;

/// The ring of one priority group.
pub(crate) struct Ring {
    /// `(position, member position)`, sorted.
    points: Vec<(u32, u32)>,
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
        Ring::of_ids(
            members
                .iter()
                .zip(&weights)
                .map(|(&i, &w)| (node_id(&nodes[i]), count(w))),
        )
    }

    /// A ring of members known by these ids, with these point counts, in member order.
    fn of_ids(ids: impl Iterator<Item = (Vec<u8>, u64)>) -> Ring {
        let mut points = Vec::new();
        for (p, (mut chain, count)) in ids.enumerate() {
            // The id, then room for the previous point.
            let id_len = chain.len();
            chain.extend_from_slice(&[0; 4]);
            // Member positions fit in u32: a group larger than the ring bound is not a real upstream.
            let p = u32::try_from(p).unwrap_or(u32::MAX);
            for _ in 0..count {
                let pos = crc32(&chain);
                points.push((pos, p));
                chain[id_len..].copy_from_slice(&pos.to_le_bytes());
            }
        }
        points.sort_unstable();
        Ring { points }
    }

    /// The index of the point `key` lands on: the first at or after its hash, wrapping around.
    fn find(&self, key: &str) -> usize {
        let h = crc32(key.as_bytes());
        let at = self.points.partition_point(|&(pos, _)| pos < h);
        if at == self.points.len() {
            0
        } else {
            at
        }
    }

    /// The position in `members` for `key`, skipping members whose node is in `tried`.
    pub(crate) fn pick(&self, key: &str, members: &[usize], tried: &Skip<'_>) -> Option<usize> {
        let len = self.points.len();
        if len == 0 {
            return None;
        }
        let start = self.find(key);
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

/// A node's id on the ring: `host:port` (an IPv6 host in brackets) with `:` made NUL.
fn node_id(node: &Node) -> Vec<u8> {
    let host = if node.host.contains(':') && !node.host.starts_with('[') {
        format!("[{}]", node.host)
    } else {
        node.host.clone()
    };
    format!("{host}:{}", node.port)
        .replace(':', "\0")
        .into_bytes()
}

/// The CRC32 (IEEE) of `bytes`.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = flate2::Crc::new();
    crc.update(bytes);
    crc.sum()
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
    fn keys_land_where_apisix_puts_them() {
        // APISIX's t/plugin/traffic-split2.t (TEST 11): with these two nodes, `world` goes to
        // 1981 and `hello` to 1982.
        let port = |p: u16| Node {
            port: p,
            ..node("127.0.0.1", 1, 0)
        };
        let b = chash(vec![port(1981), port(1982)]);
        assert_eq!(b.pick(Some("world"), &[]), Some(0));
        assert_eq!(b.pick(Some("hello"), &[]), Some(1));
        assert_eq!(crc32(b"123456789"), 0xcbf4_3926, "the IEEE CRC32");
        assert_eq!(node_id(&port(80)), b"127.0.0.1\x0080");
        let v6 = Node {
            host: "::1".into(),
            ..port(80)
        };
        assert_eq!(node_id(&v6), b"[\x00\x001]\x0080");
    }

    #[test]
    fn points_are_resty_chash_points() {
        // lua-resty-balancer's t/chash.t: weights 10, 2 and 1 (160 points per unit), keys 1 to
        // 100 000.
        let ids = |weights: &[u64]| {
            let ids: Vec<(Vec<u8>, u64)> = weights
                .iter()
                .enumerate()
                .map(|(i, w)| (format!("server{}", i + 1).into_bytes(), w * POINTS_PER_UNIT))
                .collect();
            Ring::of_ids(ids.into_iter())
        };
        let ring = ids(&[10, 2, 1]);
        assert_eq!(ring.len(), 2080);
        let mut counts = [0; 3];
        for k in 1..=100_000 {
            counts[ring.points[ring.find(&k.to_string())].1 as usize] += 1;
        }
        assert_eq!(counts, [77_075, 14_743, 8_182]);
        // Its `next` test: weights 2, 2 and 1; `foo` lands on point 434 (server1), and 100 points
        // on is server2's.
        let ring = ids(&[2, 2, 1]);
        let at = ring.find("foo");
        assert_eq!((at, ring.points[at].1), (434, 0));
        assert_eq!(ring.points[(at + 100) % ring.len()].1, 1);
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
