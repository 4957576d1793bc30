//! Behavior monitoring: how each SMTP session follows the protocol, what
//! each client address, login and sender does over time, and the limits
//! that stop what is abusive.
//!
//! ```text
//! milter event ─▶ SessionState (session.rs) ─┬─ conformity checks ─▶ findings, score
//!                                            └─ Batch of counter ops
//!              Batch ─▶ Store (store.rs: MemoryStore → Table per key kind) ─▶ tripped limits
//!              tripped limits + thresholds ─▶ Decision (continue / 4xx / 5xx / 421)
//! close ─▶ SessionRecord (record.rs) ─▶ Recorder (recorder.rs) ─▶ one JSON line
//! ```
//!
//! Modules, one concern each: [`finding`] (codes and weights), [`address`]
//! (RFC 5321 paths), [`params`] (ESMTP parameters), [`conformity`] (the
//! checks), [`window`] (bucket rings), [`distinct`] (distinct counts),
//! [`table`] (keys with a cap and eviction), [`limits`] (rules),
//! [`store`] (the async store interface), [`policy`] (settings compiled),
//! [`session`] (one session), [`record`] (its JSON line), [`recorder`]
//! (the file), [`clock`] (injectable time), [`counters`] (totals for the
//! metrics endpoint), [`monitor`] (all of it shared by the milter).
//!
//! Everything but the monitor's store call and the recorder's thread is
//! plain synchronous code, tested with a fake clock.

pub mod address;
pub mod clock;
pub mod conformity;
pub mod counters;
pub mod distinct;
pub mod finding;
pub mod limits;
pub mod monitor;
pub mod params;
pub mod policy;
pub mod record;
pub mod recorder;
pub mod session;
pub mod store;
pub mod table;
pub mod window;

pub use clock::{Clock, FakeClock, SystemClock};
pub use monitor::Monitor;
pub use policy::Policy;
pub use session::{Decision, SessionState};
