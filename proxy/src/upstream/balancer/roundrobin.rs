//! Smooth weighted round robin (nginx `ngx_http_upstream_get_peer`).
//!
//! Each pick adds every candidate's weight to its running score, picks the highest score and subtracts
//! the sum of the candidates' weights from the winner. Over `sum(weights)` picks each node is chosen
//! exactly `weight` times, spread out (weights 5:1:1 give `a a b a c a a`). Nodes in `tried` are not
//! candidates, as in nginx. When all weights are equal this reduces to a plain rotation, done with an
//! atomic counter and no lock.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use super::Skip;

/// Round robin state over the members of one priority group.
pub(crate) struct RoundRobin {
    weights: Vec<i64>,
    /// All weights equal: rotate with `counter` and never touch `current`.
    equal: bool,
    counter: AtomicUsize,
    /// Running scores of the smooth algorithm, by member position.
    current: Mutex<Vec<i64>>,
}

impl RoundRobin {
    /// State for members with these weights (all > 0).
    pub(crate) fn new(weights: &[u32]) -> RoundRobin {
        let equal = weights.windows(2).all(|w| w[0] == w[1]);
        RoundRobin {
            weights: weights.iter().map(|&w| i64::from(w)).collect(),
            equal,
            counter: AtomicUsize::new(0),
            current: Mutex::new(if equal {
                Vec::new()
            } else {
                vec![0; weights.len()]
            }),
        }
    }

    /// The position in `members` of the next member not in `tried`.
    pub(crate) fn pick(&self, members: &[usize], tried: &Skip<'_>) -> Option<usize> {
        let n = members.len();
        if n == 0 {
            return None;
        }
        if self.equal {
            let start = self.counter.fetch_add(1, Ordering::Relaxed) % n;
            return (0..n)
                .map(|k| (start + k) % n)
                .find(|&p| !tried.contains(&members[p]));
        }
        // A panic while holding the lock cannot leave the scores invalid (any values work), so a
        // poisoned lock is simply reused.
        let mut current = self
            .current
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut total = 0i64;
        let mut best: Option<usize> = None;
        for (p, (&w, &node)) in self.weights.iter().zip(members).enumerate() {
            if tried.contains(&node) {
                continue;
            }
            current[p] += w;
            total += w;
            if best.is_none_or(|b| current[p] > current[b]) {
                best = Some(p);
            }
        }
        let best = best?;
        current[best] -= total;
        Some(best)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::node;
    use super::super::{Balancer, Kind};

    fn shares(b: &Balancer, picks: usize) -> Vec<f64> {
        let mut counts = vec![0usize; b.nodes().len()];
        for _ in 0..picks {
            counts[b.pick(None, &[]).expect("a node")] += 1;
        }
        counts.iter().map(|&c| c as f64 / picks as f64).collect()
    }

    #[test]
    fn weights_1_2_7_within_two_percent() {
        let b = Balancer::new(
            Kind::RoundRobin,
            vec![node("a", 1, 0), node("b", 2, 0), node("c", 7, 0)],
        );
        let got = shares(&b, 10_000);
        for (g, want) in got.iter().zip([0.1, 0.2, 0.7]) {
            assert!((g - want).abs() <= 0.02 * want, "share {g} vs {want}");
        }
    }

    #[test]
    fn smooth_sequence_5_1_1_like_nginx() {
        let b = Balancer::new(
            Kind::RoundRobin,
            vec![node("a", 5, 0), node("b", 1, 0), node("c", 1, 0)],
        );
        let seq: String = (0..14)
            .map(|_| ["a", "b", "c"][b.pick(None, &[]).expect("a node")])
            .collect();
        assert_eq!(seq, "aabacaaaabacaa");
    }

    #[test]
    fn equal_weights_rotate() {
        let b = Balancer::new(
            Kind::RoundRobin,
            vec![node("a", 3, 0), node("b", 3, 0), node("c", 3, 0)],
        );
        let seq: Vec<usize> = (0..6).filter_map(|_| b.pick(None, &[])).collect();
        assert_eq!(seq, vec![0, 1, 2, 0, 1, 2]);
        // Skipping a tried node keeps going round.
        let seq: Vec<usize> = (0..4).filter_map(|_| b.pick(None, &[1])).collect();
        assert_eq!(seq, vec![0, 2, 2, 0]);
    }

    #[test]
    fn smooth_skips_tried() {
        let b = Balancer::new(
            Kind::RoundRobin,
            vec![node("a", 5, 0), node("b", 1, 0), node("c", 1, 0)],
        );
        for _ in 0..20 {
            let p = b.pick(None, &[0]);
            assert!(matches!(p, Some(1 | 2)), "{p:?}");
        }
        assert_eq!(b.pick(None, &[0, 2]), Some(1));
        assert_eq!(b.pick(None, &[0, 1, 2]), None);
    }
}
