//! Judgment: the entries found in a message → a score and a verdict, and
//! the verdict → what is done with the message.
//!
//! # Rules
//!
//! * Each distinct entry found counts once, with its weight, in its
//!   category (how often it occurs does not matter).
//! * A category's score is the sum of its entries' weights, at most its
//!   cap when it has one (caps bound from above only; negative weights
//!   still lower a score).
//! * The message score is the sum of the category scores.
//! * The score gives a verdict by thresholds, each optional: at least
//!   `reject` → reject, else at least `tempfail` → tempfail, else at least
//!   `quarantine` → quarantine, else at least `tag` → tag, else accept.
//! * Entry actions override: the verdict is the strongest of the score's
//!   verdict and every found entry's action, in the order reject >
//!   tempfail > quarantine > tag > accept.
//!
//! [`dispose`] then decides what happens to the message: an exempt message
//! (role recipient, trusted network, authenticated sender) and every
//! message in `tag` mode is delivered, never refused; in `enforce` mode the
//! verdict applies. The verdict header is added to delivered mail that was
//! tagged, quarantined, or judged anything but accept in `tag` mode, and to
//! all delivered mail when `tag_accepted` is set.
//!
//! Everything here is plain synchronous code over values: no I/O, no
//! clock, no library access.

use std::collections::HashMap;
use std::fmt;

use crate::config::model::Mode;
use crate::library::Action;

/// Scores are compared with this tolerance, so that weights such as 0.1
/// and 0.2 reach a threshold of 0.3 despite binary rounding.
const EPSILON: f64 = 1e-9;

/// What the rules say about a message. Ordered by strength.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Verdict {
    Accept,
    Tag,
    Quarantine,
    Tempfail,
    Reject,
}

impl Verdict {
    pub fn as_str(self) -> &'static str {
        match self {
            Verdict::Accept => "accept",
            Verdict::Tag => "tag",
            Verdict::Quarantine => "quarantine",
            Verdict::Tempfail => "tempfail",
            Verdict::Reject => "reject",
        }
    }
}

impl From<Action> for Verdict {
    fn from(a: Action) -> Verdict {
        match a {
            Action::Tag => Verdict::Tag,
            Action::Quarantine => Verdict::Quarantine,
            Action::Tempfail => Verdict::Tempfail,
            Action::Reject => Verdict::Reject,
        }
    }
}

impl fmt::Display for Verdict {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Thresholds and caps.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Policy {
    pub reject: Option<f64>,
    pub tempfail: Option<f64>,
    pub quarantine: Option<f64>,
    pub tag: Option<f64>,
    /// Most a category adds to the score.
    pub caps: HashMap<String, f64>,
}

/// One distinct entry found in a message.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Mark<'a> {
    pub category: &'a str,
    pub weight: f64,
    pub action: Option<Action>,
}

/// A category's part of the score.
#[derive(Clone, Debug, PartialEq)]
pub struct CategoryScore {
    pub name: String,
    /// After the cap.
    pub score: f64,
    /// Whether the cap lowered it.
    pub capped: bool,
}

/// The rules' judgment of a message.
#[derive(Clone, Debug, PartialEq)]
pub struct Judgment {
    pub score: f64,
    /// In order of first appearance among the marks.
    pub categories: Vec<CategoryScore>,
    /// The verdict of the score alone.
    pub by_score: Verdict,
    /// The strongest action of a found entry.
    pub by_action: Option<Action>,
    /// The strongest of the two.
    pub verdict: Verdict,
}

fn reaches(score: f64, threshold: Option<f64>) -> bool {
    threshold.is_some_and(|t| score >= t - EPSILON)
}

/// Judges the distinct entries found in a message (each mark is one
/// entry; the caller passes each entry once).
pub fn judge<'a>(policy: &Policy, marks: impl IntoIterator<Item = Mark<'a>>) -> Judgment {
    let mut categories: Vec<CategoryScore> = Vec::new();
    let mut by_action: Option<Action> = None;
    for m in marks {
        match categories.iter_mut().find(|c| c.name == m.category) {
            Some(c) => c.score += m.weight,
            None => categories.push(CategoryScore {
                name: m.category.to_owned(),
                score: m.weight,
                capped: false,
            }),
        }
        by_action = by_action.max(m.action);
    }
    for c in &mut categories {
        if let Some(&cap) = policy.caps.get(&c.name)
            && c.score > cap
        {
            c.score = cap;
            c.capped = true;
        }
    }
    // Not `sum()`: an empty f64 sum is -0.0, which would print as "-0.0".
    let score = categories.iter().fold(0.0, |a, c| a + c.score);
    let by_score = if reaches(score, policy.reject) {
        Verdict::Reject
    } else if reaches(score, policy.tempfail) {
        Verdict::Tempfail
    } else if reaches(score, policy.quarantine) {
        Verdict::Quarantine
    } else if reaches(score, policy.tag) {
        Verdict::Tag
    } else {
        Verdict::Accept
    };
    let verdict = by_score.max(by_action.map_or(Verdict::Accept, Verdict::from));
    Judgment {
        score,
        categories,
        by_score,
        by_action,
        verdict,
    }
}

/// Why a message is not refused for its content.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Exemption {
    /// A recipient is `postmaster@` or `abuse@` (RFC 2142).
    RoleRecipient,
    /// The client address is in a trusted network.
    TrustedNetwork,
    /// The sender authenticated (when so configured).
    Authenticated,
}

impl Exemption {
    pub fn as_str(self) -> &'static str {
        match self {
            Exemption::RoleRecipient => "role-recipient",
            Exemption::TrustedNetwork => "trusted-network",
            Exemption::Authenticated => "authenticated",
        }
    }
}

impl fmt::Display for Exemption {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is done with the message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Act {
    Deliver,
    Quarantine,
    Tempfail,
    Reject,
}

impl Act {
    pub fn as_str(self) -> &'static str {
        match self {
            Act::Deliver => "deliver",
            Act::Quarantine => "quarantine",
            Act::Tempfail => "tempfail",
            Act::Reject => "reject",
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Disposition {
    pub act: Act,
    /// Whether to add the verdict header (only ever with a delivery or a
    /// quarantine).
    pub header: bool,
}

/// Decides what happens to a message judged `verdict`.
pub fn dispose(
    verdict: Verdict,
    mode: Mode,
    exemption: Option<Exemption>,
    tag_accepted: bool,
) -> Disposition {
    let deliver = |header| Disposition {
        act: Act::Deliver,
        header,
    };
    if exemption.is_some() {
        return deliver(tag_accepted);
    }
    match (mode, verdict) {
        (Mode::Tag, v) => deliver(tag_accepted || v > Verdict::Accept),
        (Mode::Enforce, Verdict::Accept) => deliver(tag_accepted),
        (Mode::Enforce, Verdict::Tag) => deliver(true),
        (Mode::Enforce, Verdict::Quarantine) => Disposition {
            act: Act::Quarantine,
            header: true,
        },
        (Mode::Enforce, Verdict::Tempfail) => Disposition {
            act: Act::Tempfail,
            header: false,
        },
        (Mode::Enforce, Verdict::Reject) => Disposition {
            act: Act::Reject,
            header: false,
        },
    }
}

/// The verdict header's value: `score=7.0 verdict=reject gen=3`, plus
/// `exempt=…` when an exemption applied.
pub fn header_value(j: &Judgment, generation: u64, exemption: Option<Exemption>) -> String {
    let mut v = format!(
        "score={:.1} verdict={} gen={generation}",
        j.score, j.verdict
    );
    if let Some(e) = exemption {
        v.push_str(" exempt=");
        v.push_str(e.as_str());
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> Policy {
        Policy {
            reject: Some(10.0),
            tempfail: Some(6.0),
            quarantine: None,
            tag: None,
            caps: HashMap::new(),
        }
    }

    fn m(category: &str, weight: f64) -> Mark<'_> {
        Mark {
            category,
            weight,
            action: None,
        }
    }

    fn ma(category: &str, weight: f64, action: Action) -> Mark<'_> {
        Mark {
            category,
            weight,
            action: Some(action),
        }
    }

    #[test]
    fn nothing_found_is_accept_with_zero() {
        let j = judge(&policy(), []);
        assert_eq!(j.score, 0.0);
        assert!(j.score.is_sign_positive());
        assert!(j.categories.is_empty());
        assert_eq!(j.verdict, Verdict::Accept);
        assert_eq!(j.by_action, None);
    }

    #[test]
    fn weights_add_within_and_across_categories() {
        let j = judge(&policy(), [m("a", 2.0), m("b", 1.5), m("a", 3.0)]);
        assert_eq!(j.score, 6.5);
        assert_eq!(j.categories.len(), 2);
        assert_eq!(j.categories[0].name, "a");
        assert_eq!(j.categories[0].score, 5.0);
        assert_eq!(j.categories[1].score, 1.5);
    }

    #[test]
    fn caps_bound_a_category_from_above() {
        let mut p = policy();
        p.caps.insert("domains".into(), 4.0);
        let j = judge(&p, [m("domains", 5.0), m("domains", 5.0), m("other", 1.0)]);
        assert_eq!(j.score, 5.0);
        assert!(j.categories[0].capped);
        assert!(!j.categories[1].capped);
        assert_eq!(j.verdict, Verdict::Accept);
    }

    #[test]
    fn cap_does_not_raise_a_low_category() {
        let mut p = policy();
        p.caps.insert("a".into(), 4.0);
        let j = judge(&p, [m("a", 1.0), m("a", -3.0)]);
        assert_eq!(j.score, -2.0);
        assert!(!j.categories[0].capped);
    }

    #[test]
    fn negative_weights_lower_the_score() {
        let j = judge(&policy(), [m("spam", 7.0), m("ham", -2.0)]);
        assert_eq!(j.score, 5.0);
        assert_eq!(j.verdict, Verdict::Accept);
    }

    #[test]
    fn thresholds_are_inclusive() {
        assert_eq!(judge(&policy(), [m("a", 10.0)]).verdict, Verdict::Reject);
        assert_eq!(judge(&policy(), [m("a", 9.99)]).verdict, Verdict::Tempfail);
        assert_eq!(judge(&policy(), [m("a", 6.0)]).verdict, Verdict::Tempfail);
        assert_eq!(judge(&policy(), [m("a", 5.99)]).verdict, Verdict::Accept);
    }

    #[test]
    fn rounding_does_not_miss_a_threshold() {
        let mut p = policy();
        p.tempfail = Some(0.3);
        let j = judge(&p, [m("a", 0.1), m("b", 0.2)]);
        assert_eq!(j.verdict, Verdict::Tempfail);
    }

    #[test]
    fn quarantine_and_tag_thresholds() {
        let mut p = policy();
        p.quarantine = Some(4.0);
        p.tag = Some(2.0);
        assert_eq!(judge(&p, [m("a", 4.0)]).verdict, Verdict::Quarantine);
        assert_eq!(judge(&p, [m("a", 2.0)]).verdict, Verdict::Tag);
        assert_eq!(judge(&p, [m("a", 1.0)]).verdict, Verdict::Accept);
    }

    #[test]
    fn thresholds_off_never_fire() {
        let p = Policy::default();
        assert_eq!(judge(&p, [m("a", 1e9)]).verdict, Verdict::Accept);
        let mut p = policy();
        p.tempfail = None;
        assert_eq!(judge(&p, [m("a", 8.0)]).verdict, Verdict::Accept);
        assert_eq!(judge(&p, [m("a", 10.0)]).verdict, Verdict::Reject);
    }

    #[test]
    fn reject_threshold_below_tempfail_wins() {
        let mut p = policy();
        p.reject = Some(5.0);
        p.tempfail = Some(8.0);
        assert_eq!(judge(&p, [m("a", 9.0)]).verdict, Verdict::Reject);
    }

    #[test]
    fn an_action_overrides_a_low_score() {
        let j = judge(&policy(), [ma("a", 0.5, Action::Reject)]);
        assert_eq!(j.by_score, Verdict::Accept);
        assert_eq!(j.by_action, Some(Action::Reject));
        assert_eq!(j.verdict, Verdict::Reject);
    }

    #[test]
    fn the_strongest_action_wins() {
        let j = judge(
            &policy(),
            [
                ma("a", 0.0, Action::Tag),
                ma("a", 0.0, Action::Tempfail),
                ma("a", 0.0, Action::Quarantine),
            ],
        );
        assert_eq!(j.by_action, Some(Action::Tempfail));
        assert_eq!(j.verdict, Verdict::Tempfail);
    }

    #[test]
    fn a_weaker_action_does_not_lower_the_score_verdict() {
        let j = judge(&policy(), [ma("a", 12.0, Action::Tag)]);
        assert_eq!(j.verdict, Verdict::Reject);
    }

    #[test]
    fn verdict_order() {
        use Verdict::*;
        assert!(Reject > Tempfail && Tempfail > Quarantine && Quarantine > Tag && Tag > Accept);
        for a in Action::ALL {
            assert_eq!(Verdict::from(a).as_str(), a.as_str());
        }
    }

    #[test]
    fn enforce_applies_the_verdict() {
        let d = |v| dispose(v, Mode::Enforce, None, false);
        assert_eq!(
            d(Verdict::Accept),
            Disposition {
                act: Act::Deliver,
                header: false
            }
        );
        assert_eq!(
            d(Verdict::Tag),
            Disposition {
                act: Act::Deliver,
                header: true
            }
        );
        assert_eq!(
            d(Verdict::Quarantine),
            Disposition {
                act: Act::Quarantine,
                header: true
            }
        );
        assert_eq!(
            d(Verdict::Tempfail),
            Disposition {
                act: Act::Tempfail,
                header: false
            }
        );
        assert_eq!(
            d(Verdict::Reject),
            Disposition {
                act: Act::Reject,
                header: false
            }
        );
    }

    #[test]
    fn tag_accepted_adds_the_header_to_accepted_mail() {
        let d = dispose(Verdict::Accept, Mode::Enforce, None, true);
        assert_eq!(
            d,
            Disposition {
                act: Act::Deliver,
                header: true
            }
        );
        let d = dispose(Verdict::Reject, Mode::Enforce, None, true);
        assert_eq!(d.act, Act::Reject);
    }

    #[test]
    fn tag_mode_delivers_everything() {
        for v in [
            Verdict::Tag,
            Verdict::Quarantine,
            Verdict::Tempfail,
            Verdict::Reject,
        ] {
            let d = dispose(v, Mode::Tag, None, false);
            assert_eq!(
                d,
                Disposition {
                    act: Act::Deliver,
                    header: true
                },
                "{v}"
            );
        }
        let d = dispose(Verdict::Accept, Mode::Tag, None, false);
        assert_eq!(
            d,
            Disposition {
                act: Act::Deliver,
                header: false
            }
        );
        let d = dispose(Verdict::Accept, Mode::Tag, None, true);
        assert!(d.header);
    }

    #[test]
    fn exempt_mail_is_delivered_untouched() {
        for e in [
            Exemption::RoleRecipient,
            Exemption::TrustedNetwork,
            Exemption::Authenticated,
        ] {
            for v in [
                Verdict::Reject,
                Verdict::Tempfail,
                Verdict::Quarantine,
                Verdict::Tag,
            ] {
                let d = dispose(v, Mode::Enforce, Some(e), false);
                assert_eq!(
                    d,
                    Disposition {
                        act: Act::Deliver,
                        header: false
                    }
                );
                let d = dispose(v, Mode::Tag, Some(e), true);
                assert_eq!(
                    d,
                    Disposition {
                        act: Act::Deliver,
                        header: true
                    }
                );
            }
        }
    }

    #[test]
    fn header_names_score_verdict_generation_and_exemption() {
        let j = judge(&policy(), [m("a", 7.04)]);
        assert_eq!(
            header_value(&j, 3, None),
            "score=7.0 verdict=tempfail gen=3"
        );
        assert_eq!(
            header_value(&j, 1, Some(Exemption::RoleRecipient)),
            "score=7.0 verdict=tempfail gen=1 exempt=role-recipient"
        );
    }
}
