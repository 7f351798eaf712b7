//! The budget of refused requests the audit log records one by one.
//!
//! Anyone can send a request that is refused (no token, another tenant's
//! name, a field over its bound), and each refusal is an audit event: without
//! a budget, a caller with no credentials at all decides how fast the log
//! and the disk grow. Two token buckets bound it: one over every refusal,
//! one per tenant the request claims (so a flood against one tenant cannot
//! spend every other tenant's share). A refusal over budget is not dropped
//! silently: it is counted under the tenant its event would have been filed
//! under, and the counts are written periodically as summary events
//! (outcome `SUPPRESSED`, with `suppressed_count`).

use std::collections::{BTreeMap, HashMap};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

use serde::Deserialize;

/// How many refused requests the audit log records one by one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RefusalLimits {
    /// Refusals recorded per second, over all tenants.
    pub per_sec: u32,
    /// Refusals recorded at once after a quiet spell, over all tenants.
    pub burst: u32,
    /// Refusals recorded per second for requests claiming one tenant.
    pub per_tenant_per_sec: u32,
    /// Refusals recorded at once for requests claiming one tenant.
    pub per_tenant_burst: u32,
    /// Seconds between the summaries of the refusals over budget.
    pub summary_secs: u64,
}

impl Default for RefusalLimits {
    fn default() -> Self {
        Self {
            per_sec: 20,
            burst: 100,
            per_tenant_per_sec: 5,
            per_tenant_burst: 20,
            summary_secs: 10,
        }
    }
}

impl RefusalLimits {
    /// Why these limits cannot work, if they cannot: each must be at least 1
    /// (a bucket that never fills would record nothing but summaries).
    pub fn problem(&self) -> Option<&'static str> {
        if self.per_sec == 0 || self.burst == 0 {
            Some("refused_audit.per_sec and refused_audit.burst must be at least 1")
        } else if self.per_tenant_per_sec == 0 || self.per_tenant_burst == 0 {
            Some(
                "refused_audit.per_tenant_per_sec and refused_audit.per_tenant_burst must be at least 1",
            )
        } else if self.summary_secs == 0 {
            Some("refused_audit.summary_secs must be at least 1")
        } else {
            None
        }
    }
}

/// Claimed tenants whose buckets are kept. Beyond this (a caller claiming
/// ever new tenant ids), buckets that have refilled are forgotten — a full
/// bucket is what a new one would be — and if none has, the newcomers share
/// one bucket: memory stays bounded whatever ids arrive.
const MAX_TRACKED_TENANTS: usize = 4096;
/// Tenants that get a summary event of their own per period; the counts of
/// any others are folded into the summary filed under no tenant.
pub const MAX_SUMMARIES: usize = 16;

/// A token bucket: `tokens` refill at a rate up to a burst.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    fn full(burst: u32, now: Instant) -> Self {
        Self {
            tokens: f64::from(burst),
            at: now,
        }
    }

    fn refill(&mut self, per_sec: u32, burst: u32, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * f64::from(per_sec)).min(f64::from(burst));
        self.at = now.max(self.at);
    }
}

#[derive(Debug)]
struct State {
    global: Bucket,
    tenants: HashMap<String, Bucket>,
    /// Shared by claimed tenants beyond [`MAX_TRACKED_TENANTS`].
    overflow: Bucket,
    /// Refusals over budget, by the tenant their events are filed under
    /// (`""`: none), since the last summary.
    suppressed: BTreeMap<String, u64>,
}

/// The refusal budget: decides which refusals are recorded and counts the rest.
#[derive(Debug)]
pub struct RefusalBudget {
    limits: RefusalLimits,
    state: Mutex<State>,
}

impl RefusalBudget {
    /// A budget with full buckets.
    pub fn new(limits: RefusalLimits, now: Instant) -> Self {
        Self {
            limits,
            state: Mutex::new(State {
                global: Bucket::full(limits.burst, now),
                tenants: HashMap::new(),
                overflow: Bucket::full(limits.per_tenant_burst, now),
                suppressed: BTreeMap::new(),
            }),
        }
    }

    /// The limits it applies.
    pub fn limits(&self) -> RefusalLimits {
        self.limits
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // The state is counters only: one a panic left half-updated is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Whether a refusal of a request claiming tenant `claimed` (`""`: none)
    /// may be recorded now. If not, it is counted under `filed`, the tenant
    /// its event would have been filed under.
    pub fn admit(&self, claimed: &str, filed: &str, now: Instant) -> bool {
        let limits = self.limits;
        let mut state = self.state();
        let State {
            global,
            tenants,
            overflow,
            suppressed,
        } = &mut *state;
        if !tenants.contains_key(claimed) && tenants.len() >= MAX_TRACKED_TENANTS {
            tenants.retain(|_, bucket| {
                bucket.refill(limits.per_tenant_per_sec, limits.per_tenant_burst, now);
                bucket.tokens < f64::from(limits.per_tenant_burst)
            });
        }
        let tenant = if tenants.len() < MAX_TRACKED_TENANTS || tenants.contains_key(claimed) {
            tenants
                .entry(claimed.to_owned())
                .or_insert_with(|| Bucket::full(limits.per_tenant_burst, now))
        } else {
            overflow
        };
        global.refill(limits.per_sec, limits.burst, now);
        tenant.refill(limits.per_tenant_per_sec, limits.per_tenant_burst, now);
        if global.tokens >= 1.0 && tenant.tokens >= 1.0 {
            global.tokens -= 1.0;
            tenant.tokens -= 1.0;
            return true;
        }
        count_under(suppressed, filed, 1);
        false
    }

    /// Counts `count` refusals under `filed` again (their summary could not be written).
    pub fn restore(&self, filed: &str, count: u64) {
        count_under(&mut self.state().suppressed, filed, count);
    }

    /// The refusals over budget since the last call, by the tenant they
    /// are filed under (`""`: none); at most [`MAX_SUMMARIES`] + 1 entries.
    pub fn take_suppressed(&self) -> Vec<(String, u64)> {
        std::mem::take(&mut self.state().suppressed)
            .into_iter()
            .collect()
    }
}

/// Adds `count` under `filed`, or under no tenant once [`MAX_SUMMARIES`]
/// tenants have counts of their own.
fn count_under(suppressed: &mut BTreeMap<String, u64>, filed: &str, count: u64) {
    let key = if suppressed.contains_key(filed) || suppressed.len() < MAX_SUMMARIES {
        filed
    } else {
        ""
    };
    *suppressed.entry(key.to_owned()).or_default() += count;
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn limits() -> RefusalLimits {
        RefusalLimits {
            per_sec: 10,
            burst: 30,
            per_tenant_per_sec: 2,
            per_tenant_burst: 5,
            summary_secs: 1,
        }
    }

    #[test]
    fn a_flood_against_one_tenant_records_its_burst_then_its_rate() {
        let start = Instant::now();
        let budget = RefusalBudget::new(limits(), start);
        let recorded = (0..100)
            .filter(|_| budget.admit("victim", "", start))
            .count();
        assert_eq!(recorded, 5, "the tenant's burst");
        // Another tenant still has its own share of the global budget.
        assert!(budget.admit("other", "other", start));
        // Ten seconds later the victim's bucket refilled at 2/s, up to its burst.
        let later = start + Duration::from_secs(10);
        let recorded = (0..100)
            .filter(|_| budget.admit("victim", "", later))
            .count();
        assert_eq!(recorded, 5);
        let after_1s = later + Duration::from_secs(1);
        let recorded = (0..100)
            .filter(|_| budget.admit("victim", "", after_1s))
            .count();
        assert_eq!(recorded, 2, "the tenant's rate");
        assert_eq!(budget.take_suppressed(), [(String::new(), 95 + 95 + 98)]);
        assert!(budget.take_suppressed().is_empty(), "taken once");
    }

    #[test]
    fn the_global_bucket_bounds_floods_spread_over_many_tenants() {
        let start = Instant::now();
        let budget = RefusalBudget::new(limits(), start);
        let recorded = (0..1000)
            .filter(|i| budget.admit(&format!("t{i}"), "", start))
            .count();
        assert_eq!(recorded, 30, "the global burst");
        let later = start + Duration::from_secs(2);
        let recorded = (1000..2000)
            .filter(|i| budget.admit(&format!("t{i}"), "", later))
            .count();
        assert_eq!(recorded, 20, "the global rate");
    }

    #[test]
    fn memory_stays_bounded_whatever_tenants_are_claimed() {
        let start = Instant::now();
        let budget = RefusalBudget::new(
            RefusalLimits {
                per_sec: 1_000_000,
                burst: 1_000_000,
                ..limits()
            },
            start,
        );
        // Every claim spends a token, so no bucket is full again at once.
        for i in 0..MAX_TRACKED_TENANTS {
            budget.admit(&format!("t{i}"), "", start);
        }
        assert_eq!(budget.state().tenants.len(), MAX_TRACKED_TENANTS);
        // Newcomers share the overflow bucket: its burst, then nothing.
        let recorded = (0..100)
            .filter(|i| budget.admit(&format!("new{i}"), "", start))
            .count();
        assert_eq!(recorded, 5);
        // Once the buckets refilled, they are forgotten to make room.
        let later = start + Duration::from_secs(60);
        assert!(budget.admit("newest", "", later));
        assert!(budget.state().tenants.len() < MAX_TRACKED_TENANTS);
    }

    #[test]
    fn summaries_go_to_the_filing_tenant_and_at_most_a_few_get_their_own() {
        let start = Instant::now();
        let budget = RefusalBudget::new(
            RefusalLimits {
                per_tenant_burst: 1,
                ..limits()
            },
            start,
        );
        for i in 0..(MAX_SUMMARIES + 10) {
            let tenant = format!("t{i:02}");
            budget.admit(&tenant, &tenant, start);
            budget.admit(&tenant, &tenant, start);
        }
        let summaries = budget.take_suppressed();
        assert_eq!(summaries.len(), MAX_SUMMARIES + 1);
        assert_eq!(
            summaries[0],
            (String::new(), 10),
            "the rest, under no tenant"
        );
        assert_eq!(summaries[1], ("t00".to_owned(), 1));
        let total: u64 = summaries.iter().map(|(_, count)| count).sum();
        assert_eq!(total, (MAX_SUMMARIES + 10) as u64);
    }

    #[test]
    fn zero_limits_are_refused() {
        assert_eq!(RefusalLimits::default().problem(), None);
        for broken in [
            RefusalLimits {
                per_sec: 0,
                ..RefusalLimits::default()
            },
            RefusalLimits {
                per_tenant_burst: 0,
                ..RefusalLimits::default()
            },
            RefusalLimits {
                summary_secs: 0,
                ..RefusalLimits::default()
            },
        ] {
            assert!(broken.problem().is_some(), "{broken:?}");
        }
    }
}
