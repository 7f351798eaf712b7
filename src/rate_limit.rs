//! Per-tenant request rate limits: a token bucket for each tenant that
//! requests name (each principal, for requests naming none).
//!
//! A bucket holds up to `burst` tokens and refills at `per_second`; each
//! admitted request takes one, and a request finding none is refused with the
//! time until the next token. Keys are checked only once the caller was
//! admitted into the tenant, and they are kept as keyed 64-bit hashes, so a
//! caller naming many tenants costs a few dozen bytes each. The map is
//! bounded: at `capacity` keys, buckets that have refilled (and so mean
//! nothing a new bucket would not) are dropped first, then the fullest.

use std::collections::HashMap;
use std::hash::BuildHasher;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// The most keys the limiter remembers (about 40 bytes each).
pub const MAX_TRACKED: usize = 65_536;

/// A rate: `per_second` requests on average, `burst` at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Requests per second; 0 turns the limit off.
    pub per_second: u32,
    /// Requests a quiet tenant may send at once; 0 means `per_second`.
    pub burst: u32,
}

/// Whom a bucket counts.
#[derive(Debug, Clone, Copy)]
pub enum Key<'a> {
    /// A tenant id named by the request.
    Tenant(&'a str),
    /// The principal of a request naming no tenant.
    Principal(&'a str),
}

/// A refusal: when the next request would be admitted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttled {
    /// The time until a token is back.
    pub retry_after: Duration,
    /// Whether the previous request of this key was admitted: the start of a
    /// run of refusals, worth one log line.
    pub first: bool,
}

/// One key's tokens as of `at`.
#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    at: Instant,
    throttled: bool,
}

/// Token buckets by key, bounded in number.
#[derive(Debug)]
pub struct RateLimiter {
    per_second: f64,
    burst: f64,
    capacity: usize,
    hasher: std::collections::hash_map::RandomState,
    buckets: Mutex<HashMap<u64, Bucket>>,
}

impl RateLimiter {
    /// A limiter for `limit`, remembering at most `capacity` keys; `None` when the limit is off.
    pub fn new(limit: RateLimit, capacity: usize) -> Option<RateLimiter> {
        if limit.per_second == 0 {
            return None;
        }
        let burst = match limit.burst {
            0 => limit.per_second,
            burst => burst,
        };
        Some(RateLimiter {
            per_second: f64::from(limit.per_second),
            burst: f64::from(burst),
            capacity: capacity.max(1),
            hasher: std::collections::hash_map::RandomState::new(),
            buckets: Mutex::new(HashMap::new()),
        })
    }

    /// Takes a token of `key`'s bucket at `now`, or says how long until one is back.
    pub fn check(&self, key: Key<'_>, now: Instant) -> Result<(), Throttled> {
        let hash = match key {
            Key::Tenant(tenant) => self.hasher.hash_one((0_u8, tenant)),
            Key::Principal(subject) => self.hasher.hash_one((1_u8, subject)),
        };
        // Nothing below can panic halfway through a change.
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if !buckets.contains_key(&hash) && buckets.len() >= self.capacity {
            self.make_room(&mut buckets, now);
        }
        let bucket = buckets.entry(hash).or_insert(Bucket {
            tokens: self.burst,
            at: now,
            throttled: false,
        });
        bucket.tokens = self.refilled(bucket, now);
        bucket.at = bucket.at.max(now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            bucket.throttled = false;
            return Ok(());
        }
        let first = !bucket.throttled;
        bucket.throttled = true;
        let wait = (1.0 - bucket.tokens) / self.per_second;
        Err(Throttled {
            retry_after: Duration::from_secs_f64(wait).max(Duration::from_millis(1)),
            first,
        })
    }

    /// The keys remembered now.
    pub fn tracked(&self) -> usize {
        self.buckets
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .len()
    }

    /// `bucket`'s tokens at `now`.
    fn refilled(&self, bucket: &Bucket, now: Instant) -> f64 {
        let elapsed = now.saturating_duration_since(bucket.at).as_secs_f64();
        (bucket.tokens + elapsed * self.per_second).min(self.burst)
    }

    /// Frees at least one place: drops every bucket that has refilled (a new
    /// bucket would say the same), else the fullest one.
    fn make_room(&self, buckets: &mut HashMap<u64, Bucket>, now: Instant) {
        buckets.retain(|_, bucket| self.refilled(bucket, now) < self.burst);
        if buckets.len() < self.capacity {
            return;
        }
        let fullest = buckets
            .iter()
            .max_by(|(_, a), (_, b)| self.refilled(a, now).total_cmp(&self.refilled(b, now)))
            .map(|(hash, _)| *hash);
        if let Some(hash) = fullest {
            buckets.remove(&hash);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limiter(per_second: u32, burst: u32, capacity: usize) -> RateLimiter {
        RateLimiter::new(RateLimit { per_second, burst }, capacity).unwrap()
    }

    #[test]
    fn a_burst_then_the_rate() {
        let limiter = limiter(10, 3, 16);
        let start = Instant::now();
        for _ in 0..3 {
            limiter.check(Key::Tenant("a"), start).unwrap();
        }
        let refused = limiter.check(Key::Tenant("a"), start).unwrap_err();
        assert!(refused.first);
        assert_eq!(refused.retry_after, Duration::from_millis(100));
        let again = limiter.check(Key::Tenant("a"), start).unwrap_err();
        assert!(!again.first, "one log line per run of refusals");
        // Another tenant, and a principal of the same name, have their own buckets.
        limiter.check(Key::Tenant("b"), start).unwrap();
        limiter.check(Key::Principal("a"), start).unwrap();
        // A tenth of a second later, one more token.
        let later = start + Duration::from_millis(100);
        limiter.check(Key::Tenant("a"), later).unwrap();
        assert!(limiter.check(Key::Tenant("a"), later).is_err());
    }

    #[test]
    fn off_is_none_and_no_burst_means_the_rate() {
        assert!(
            RateLimiter::new(
                RateLimit {
                    per_second: 0,
                    burst: 5
                },
                16
            )
            .is_none()
        );
        let limiter = limiter(2, 0, 16);
        let now = Instant::now();
        limiter.check(Key::Tenant("a"), now).unwrap();
        limiter.check(Key::Tenant("a"), now).unwrap();
        assert!(limiter.check(Key::Tenant("a"), now).is_err());
    }

    #[test]
    fn memory_is_bounded_and_a_throttled_tenant_is_kept() {
        let limiter = limiter(1, 2, 4);
        let now = Instant::now();
        for _ in 0..2 {
            limiter.check(Key::Tenant("busy"), now).unwrap();
        }
        assert!(limiter.check(Key::Tenant("busy"), now).is_err());
        for index in 0..1000 {
            let name = format!("t{index}");
            limiter.check(Key::Tenant(&name), now).unwrap();
            assert!(limiter.tracked() <= 4);
        }
        // Many names came and went; the tenant with an empty bucket is still refused.
        assert!(limiter.check(Key::Tenant("busy"), now).is_err());
        // Once its bucket refilled it may go like any other.
        let later = now + Duration::from_secs(5);
        limiter.check(Key::Tenant("busy"), later).unwrap();
    }
}
