//! Peak-EWMA latency with power of two random choices.
//!
//! Each node keeps an exponentially weighted moving average of its latency to response headers. A
//! sample above the average replaces it at once (the "peak": a node turning slow is noticed on its
//! first slow answer); a lower sample is blended in with weight `1 - exp(-Δt / 10 s)`, Δt being the
//! time since the previous sample, so the average forgets at the same rate however busy the node is.
//! When scoring, the average is also decayed towards 0 over the time since its last sample (as
//! APISIX does), so a node that was slow a while ago gets another chance.
//!
//! A pick draws two distinct untried members at random and takes the one with the lower
//! `ewma * (active + 1)`. Nodes without samples score 0, so new nodes are tried first. A failed
//! attempt (`on_finish(idx, None)`) counts as a [`FAILURE_PENALTY`] sample.
//!
//! The random draws come from a per-balancer counter run through a bijective mixer: cheap, lock-free
//! and reproducible in tests, and good enough to decorrelate concurrent pickers.
//!
//! As in APISIX, whose averages live in a shared dict keyed by `host:port`, a node's average belongs
//! to its address, not to one balancer: [`Latencies`] hands every balancer built from one config
//! source the same state for the same address, so a rebuilt upstream (a node added or removed) or
//! another upstream with that node keeps what was learned.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use super::{fmix64, Balancer, Group, Skip};

/// Time constant of the decay (APISIX `DECAY_TIME`).
const DECAY: Duration = Duration::from_secs(10);
/// Latency recorded for a failed attempt.
pub(crate) const FAILURE_PENALTY: Duration = Duration::from_secs(1);

/// Latency average of one node.
#[derive(Default)]
pub(crate) struct EwmaState {
    inner: Mutex<Sample>,
}

#[derive(Default, Clone, Copy)]
struct Sample {
    /// Average latency in nanoseconds; 0 until the first sample.
    ewma: f64,
    /// When `ewma` was last updated, in nanoseconds since the balancer's epoch.
    stamp: u64,
}

fn decay_weight(from: u64, to: u64) -> f64 {
    let dt = to.saturating_sub(from) as f64;
    (-dt / DECAY.as_nanos() as f64).exp()
}

impl EwmaState {
    /// Adds a sample taken at `now` (ns since epoch); `None` is a failure.
    pub(crate) fn record(&self, latency: Option<Duration>, now: u64) {
        let rtt = latency.unwrap_or(FAILURE_PENALTY).as_nanos() as f64;
        // Any state left by a panicking holder is a valid average, so poisoning is ignored.
        let mut s = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.ewma = if rtt > s.ewma {
            rtt
        } else {
            let w = decay_weight(s.stamp, now);
            s.ewma * w + rtt * (1.0 - w)
        };
        s.stamp = now;
    }

    /// The average at `now`, decayed towards 0 since the last sample.
    pub(crate) fn current(&self, now: u64) -> f64 {
        let s = *self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        s.ewma * decay_weight(s.stamp, now)
    }
}

/// The latency averages of node addresses, shared by the balancers that use them. An address's
/// state lives as long as some balancer holds it.
pub struct Latencies {
    states: Mutex<HashMap<String, Weak<EwmaState>>>,
    /// The time origin of every shared state's stamps.
    epoch: Instant,
}

impl Default for Latencies {
    fn default() -> Latencies {
        Latencies {
            states: Mutex::new(HashMap::new()),
            epoch: Instant::now(),
        }
    }
}

impl Latencies {
    /// The state of `address` (`host:port`), shared with every balancer holding it.
    pub(crate) fn state(&self, address: &str) -> Arc<EwmaState> {
        // Entries are only inserted or dropped whole, so a poisoned map is still consistent.
        let mut states = self
            .states
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(state) = states.get(address).and_then(Weak::upgrade) {
            return state;
        }
        states.retain(|_, state| state.strong_count() > 0);
        let state = Arc::new(EwmaState::default());
        states.insert(address.to_owned(), Arc::downgrade(&state));
        state
    }

    /// The time origin of the shared states.
    pub(crate) fn epoch(&self) -> Instant {
        self.epoch
    }
}

/// The position in `group.members` chosen by two random choices among untried members.
pub(crate) fn pick(b: &Balancer, group: &Group, tried: &Skip<'_>) -> Option<usize> {
    let members = &group.members;
    let any_tried = members.iter().any(|m| tried.contains(m));
    // Only retries pay for the list of candidates; `Vec::new` does not allocate.
    let untried: Vec<usize> = if any_tried {
        (0..members.len())
            .filter(|&p| !tried.contains(&members[p]))
            .collect()
    } else {
        Vec::new()
    };
    let n = if any_tried {
        untried.len()
    } else {
        members.len()
    };
    let at = |k: usize| if any_tried { untried[k] } else { k };
    match n {
        0 => None,
        1 => Some(at(0)),
        _ => {
            let r = fmix64(b.next_ticket().wrapping_add(0x9e37_79b9_7f4a_7c15));
            // Truncation is fine: only the values modulo n matter.
            let i = (r as usize) % n;
            let j = (i + 1 + ((r >> 32) as usize) % (n - 1)) % n;
            let (a, c) = (at(i), at(j));
            let now = b.now_nanos();
            let score = |p: usize| {
                let node = members[p];
                let ewma = b.ewma.get(node).map_or(0.0, |s| s.current(now));
                ewma * (b.active(node) as f64 + 1.0)
            };
            Some(if score(c) < score(a) { c } else { a })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::node;
    use super::super::{Balancer, Kind};
    use super::*;

    fn ewma(n: usize) -> Balancer {
        Balancer::new(
            Kind::Ewma,
            (0..n).map(|i| node(&format!("n{i}"), 1, 0)).collect(),
        )
    }

    fn sample(b: &Balancer, idx: usize, ms: u64) {
        b.on_start(idx);
        b.on_finish(idx, Some(Duration::from_millis(ms)));
    }

    #[test]
    fn prefers_fast_node_after_samples() {
        let b = ewma(3);
        sample(&b, 0, 200);
        sample(&b, 1, 2);
        sample(&b, 2, 50);
        let mut counts = [0usize; 3];
        for _ in 0..3_000 {
            counts[b.pick(None, &[]).expect("a node")] += 1;
        }
        assert_eq!(
            counts[0], 0,
            "the slowest node loses every pair: {counts:?}"
        );
        assert!(
            counts[1] > 1_800,
            "the fastest wins every pair it is in: {counts:?}"
        );
        assert!(
            counts[2] > 600,
            "the middle one wins against the slowest: {counts:?}"
        );
    }

    #[test]
    fn unsampled_nodes_are_tried_first() {
        let b = ewma(2);
        sample(&b, 0, 1);
        for _ in 0..20 {
            assert_eq!(b.pick(None, &[]), Some(1));
        }
    }

    #[test]
    fn in_flight_requests_count() {
        let b = ewma(2);
        sample(&b, 0, 10);
        sample(&b, 1, 15);
        assert_eq!(b.pick(None, &[]), Some(0));
        b.on_start(0);
        // 10 ms * 2 in flight > 15 ms * 1
        assert_eq!(b.pick(None, &[]), Some(1));
    }

    #[test]
    fn failure_is_penalised() {
        let b = ewma(2);
        sample(&b, 0, 10);
        sample(&b, 1, 20);
        b.on_start(0);
        b.on_finish(0, None);
        assert_eq!(b.pick(None, &[]), Some(1));
    }

    #[test]
    fn peak_then_decay() {
        let s = EwmaState::default();
        s.record(Some(Duration::from_millis(10)), 0);
        s.record(Some(Duration::from_millis(100)), 1);
        assert_eq!(s.current(1), 100e6, "a higher sample is taken at once");
        let ten_s = DECAY.as_nanos() as u64;
        s.record(Some(Duration::from_millis(0)), 1 + ten_s);
        let after = s.current(1 + ten_s);
        let want = 100e6 * (-1.0f64).exp();
        assert!((after - want).abs() < 1.0, "{after} vs {want}");
        // Idle time decays the score towards 0.
        assert!(s.current(1 + 3 * ten_s) < after / 5.0);
    }

    #[test]
    fn retries_skip_tried_and_use_all_candidates() {
        let b = ewma(4);
        for (i, ms) in [5, 10, 20, 40].into_iter().enumerate() {
            sample(&b, i, ms);
        }
        for _ in 0..50 {
            let p = b.pick(None, &[0, 1]);
            assert_eq!(
                p,
                Some(2),
                "2 beats 3 whenever both are the only candidates"
            );
        }
        assert_eq!(b.pick(None, &[0, 1, 2]), Some(3));
    }
}
