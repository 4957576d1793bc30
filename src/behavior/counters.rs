//! Totals of what behavior monitoring saw, for the metrics endpoint:
//! conformity findings by code and limit trips by rule.
//!
//! The monitor owns one [`Counters`] for the life of the milter and hands
//! it to every policy it compiles, so the totals survive reloads. A
//! finding costs one relaxed atomic add (a fixed array indexed by code);
//! a trip, rarer, takes a short lock on a list of at most
//! [`MAX_TRIP_SERIES`] rules.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use super::finding::{CODES, Code};
use super::limits::{KeyKind, LimitAction, Metric, Rule};

/// Distinct rules whose trips are counted; trips of further rules (a
/// configuration rewritten many times over a long run) are counted under
/// the last series.
pub const MAX_TRIP_SERIES: usize = 256;

/// What identifies a limit in the trip counts: a reload that changes any
/// of these starts a new series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TripLabel {
    /// Its place in `behavior.limits`.
    pub index: usize,
    pub key: KeyKind,
    pub metric: Metric,
    /// Seconds.
    pub window: u32,
    pub max: u64,
    pub action: LimitAction,
}

impl TripLabel {
    pub fn of(r: &Rule) -> TripLabel {
        TripLabel {
            index: r.index,
            key: r.key,
            metric: r.metric,
            window: r.window,
            max: r.max,
            action: r.action,
        }
    }
}

#[derive(Debug)]
pub struct Counters {
    findings: [AtomicU64; CODES],
    trips: Mutex<Vec<(TripLabel, u64)>>,
}

impl Default for Counters {
    fn default() -> Self {
        Counters {
            findings: std::array::from_fn(|_| AtomicU64::new(0)),
            trips: Mutex::new(Vec::new()),
        }
    }
}

impl Counters {
    pub fn finding(&self, c: Code) {
        self.findings[c as usize].fetch_add(1, Ordering::Relaxed);
    }

    pub fn trip(&self, r: &Rule) {
        let label = TripLabel::of(r);
        let mut t = self.trips.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(e) = t.iter_mut().find(|(l, _)| *l == label) {
            e.1 += 1;
        } else if t.len() < MAX_TRIP_SERIES {
            t.push((label, 1));
        } else if let Some(last) = t.last_mut() {
            last.1 += 1;
        }
    }

    /// The findings of each code, in [`Code::ALL`] order.
    pub fn findings(&self) -> impl Iterator<Item = (Code, u64)> + '_ {
        Code::ALL
            .iter()
            .map(|&c| (c, self.findings[c as usize].load(Ordering::Relaxed)))
    }

    /// The trips of each rule seen, in the order first tripped.
    pub fn trips(&self) -> Vec<(TripLabel, u64)> {
        self.trips.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::behavior::limits::SmtpReply;

    #[test]
    fn findings_and_trips_add_up() {
        let c = Counters::default();
        c.finding(Code::HeloBareIp);
        c.finding(Code::HeloBareIp);
        c.finding(Code::CmdUnknown);
        let f: Vec<(Code, u64)> = c.findings().filter(|(_, n)| *n > 0).collect();
        assert_eq!(f, [(Code::HeloBareIp, 2), (Code::CmdUnknown, 1)]);
        let mut r = Rule {
            index: 0,
            key: KeyKind::Ip,
            metric: Metric::Connections,
            window: 60,
            buckets: 6,
            max: 2,
            action: LimitAction::Tempfail,
            reply: SmtpReply {
                code: "451".into(),
                status: "4.7.1".into(),
                text: "x".into(),
            },
        };
        c.trip(&r);
        c.trip(&r);
        r.max = 3;
        c.trip(&r);
        let t = c.trips();
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].0.max, t[0].1), (2, 2));
        assert_eq!((t[1].0.max, t[1].1), (3, 1));
        for i in 0..MAX_TRIP_SERIES + 10 {
            r.index = i;
            c.trip(&r);
        }
        assert_eq!(c.trips().len(), MAX_TRIP_SERIES);
    }
}
