//! Least connections.
//!
//! Picks the untried member with the lowest `(active + 1) / weight`, `active` being the requests
//! between `on_start` and `on_finish`. Scores are compared by cross-multiplication (no floats). The
//! scan starts at a rotating offset and only a strictly lower score replaces the current best, so
//! equally loaded nodes take turns instead of the first one always winning.

use super::{Balancer, Group, Skip};

/// The position in `group.members` with the lowest load per weight, skipping `tried`.
pub(crate) fn pick(b: &Balancer, group: &Group, tried: &Skip<'_>) -> Option<usize> {
    let n = group.members.len();
    if n == 0 {
        return None;
    }
    // Truncating the ticket is fine: only its value modulo n matters.
    let start = b.next_ticket() as usize % n;
    let mut best: Option<(usize, u128, u128)> = None;
    for k in 0..n {
        let p = (start + k) % n;
        let node = group.members[p];
        if tried.contains(&node) {
            continue;
        }
        let load = b.active(node) as u128 + 1;
        let weight = u128::from(b.nodes[node].weight.max(1));
        // load / weight < best_load / best_weight
        if best.is_none_or(|(_, bl, bw)| load * bw < bl * weight) {
            best = Some((p, load, weight));
        }
    }
    best.map(|(p, _, _)| p)
}

#[cfg(test)]
mod tests {
    use std::collections::VecDeque;

    use super::super::tests::node;
    use super::super::{Balancer, Kind};

    #[test]
    fn prefers_idle_node() {
        let b = Balancer::new(
            Kind::LeastConn,
            vec![node("a", 1, 0), node("b", 1, 0), node("c", 1, 0)],
        );
        b.on_start(0);
        b.on_start(2);
        for _ in 0..10 {
            assert_eq!(b.pick(None, &[]), Some(1));
        }
        assert!(matches!(b.pick(None, &[1]), Some(0 | 2)));
        b.on_start(1);
        b.on_start(1);
        b.on_finish(0, None);
        assert_eq!(b.pick(None, &[]), Some(0));
    }

    #[test]
    fn weight_scales_the_load() {
        let b = Balancer::new(Kind::LeastConn, vec![node("a", 1, 0), node("b", 4, 0)]);
        // (3+1)/4 = 1 < (1+1)/1 = 2
        b.on_start(0);
        for _ in 0..3 {
            b.on_start(1);
        }
        assert_eq!(b.pick(None, &[]), Some(1));
        b.on_start(1);
        b.on_start(1);
        // (5+1)/4 = 1.5 < 2 still
        assert_eq!(b.pick(None, &[]), Some(1));
        b.on_start(1);
        b.on_start(1);
        b.on_start(1);
        // (8+1)/4 = 2.25 > 2
        assert_eq!(b.pick(None, &[]), Some(0));
    }

    #[test]
    fn ties_rotate() {
        let b = Balancer::new(
            Kind::LeastConn,
            vec![node("a", 2, 0), node("b", 2, 0), node("c", 2, 0)],
        );
        let mut counts = [0usize; 3];
        for _ in 0..300 {
            counts[b.pick(None, &[]).expect("a node")] += 1;
        }
        assert_eq!(counts, [100, 100, 100]);
    }

    #[test]
    fn concurrent_load_follows_weights_1_2_7() {
        let b = Balancer::new(
            Kind::LeastConn,
            vec![node("a", 1, 0), node("b", 2, 0), node("c", 7, 0)],
        );
        // 100 requests in flight, finishing in order: the in-flight mix, and so the pick share,
        // settles at the weights.
        let mut in_flight = VecDeque::new();
        let mut counts = [0usize; 3];
        for _ in 0..10_000 {
            let i = b.pick(None, &[]).expect("a node");
            b.on_start(i);
            counts[i] += 1;
            in_flight.push_back(i);
            if in_flight.len() > 100 {
                if let Some(done) = in_flight.pop_front() {
                    b.on_finish(done, None);
                }
            }
        }
        for (c, want) in counts.iter().zip([0.1, 0.2, 0.7]) {
            let got = *c as f64 / 10_000.0;
            assert!((got - want).abs() <= 0.02 * want, "{counts:?}");
        }
    }
}
