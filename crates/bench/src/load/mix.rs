//! What the load generator calls: the methods, a weighted mix of them, and
//! the cheap random numbers that draw from it.

use anyhow::{Context as _, bail};

/// A method the load generator calls.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Method {
    /// `GetConnection`.
    Get,
    /// `ListConnections`, a page of 50.
    List,
    /// `CreateConnection` (durable unless the server runs with `durable = false`).
    /// With `delete` in the mix, the new connection's name is queued for it.
    Create,
    /// `DeleteConnection` (no etag) of a connection this run's `create` calls
    /// added, oldest first, from one queue shared by the run's workers: each is
    /// deleted once, and the seeded connections the other methods pick from
    /// are never deleted. When the queue is empty, the worker first creates a
    /// connection (neither timed nor counted as a `create`; if that fails, its
    /// error is counted under `delete`) and then deletes it, so `delete` keeps
    /// its share of the mix. Only the `DeleteConnection` call is timed.
    Delete,
    /// `UpdateConnection` of the labels.
    Update,
    /// `TestConnection` of a saved connection (a TCP connect to the bench's listener).
    Test,
    /// `ResolveConnection` (secrets opened and rendered; needs the `resolver` role).
    Resolve,
}

impl Method {
    /// Every method, in report order.
    pub const ALL: [Method; 7] = [
        Method::Get,
        Method::List,
        Method::Create,
        Method::Delete,
        Method::Update,
        Method::Test,
        Method::Resolve,
    ];

    /// The short name used in mixes and reports.
    pub fn name(self) -> &'static str {
        match self {
            Method::Get => "get",
            Method::List => "list",
            Method::Create => "create",
            Method::Delete => "delete",
            Method::Update => "update",
            Method::Test => "test",
            Method::Resolve => "resolve",
        }
    }

    pub(super) fn parse(text: &str) -> anyhow::Result<Self> {
        Method::ALL
            .into_iter()
            .find(|method| method.name() == text)
            .with_context(|| {
                let names: Vec<&str> = Method::ALL.into_iter().map(Method::name).collect();
                format!("unknown method {text:?} ({})", names.join(", "))
            })
    }

    /// Whether it works on one of the workload's seeded connections.
    pub(super) fn needs_seeded_connection(self) -> bool {
        matches!(
            self,
            Method::Get | Method::Update | Method::Test | Method::Resolve
        )
    }
}

/// A weighted method mix, e.g. `get=60,list=15,create=10,delete=10,update=5`.
#[derive(Debug, Clone)]
pub struct Mix(pub Vec<(Method, u32)>);

impl Mix {
    /// Parses `name=weight` pairs (a bare name weighs 1).
    pub fn parse(text: &str) -> anyhow::Result<Self> {
        let mut parts = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, weight) = match part.split_once('=') {
                Some((name, weight)) => (
                    name.trim(),
                    weight
                        .trim()
                        .parse::<u32>()
                        .with_context(|| format!("bad weight in {part:?}"))?,
                ),
                None => (part, 1),
            };
            if weight > 0 {
                parts.push((Method::parse(name)?, weight));
            }
        }
        if parts.is_empty() {
            bail!("the mix {text:?} names no method with a positive weight");
        }
        Ok(Mix(parts))
    }

    pub(super) fn pick(&self, roll: u64) -> Method {
        let total: u64 = self.0.iter().map(|(_, w)| u64::from(*w)).sum();
        let mut point = roll % total.max(1);
        for (method, weight) in &self.0 {
            if point < u64::from(*weight) {
                return *method;
            }
            point -= u64::from(*weight);
        }
        self.0[0].0
    }

    pub(super) fn has(&self, method: Method) -> bool {
        self.0.iter().any(|(m, _)| *m == method)
    }
}

impl std::fmt::Display for Mix {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self
            .0
            .iter()
            .map(|(m, w)| format!("{}={w}", m.name()))
            .collect();
        f.write_str(&parts.join(","))
    }
}

/// A small, fast, seedable generator (xorshift64*): the mix needs no crypto.
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed (0 is remapped).
    pub fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    /// The next value.
    pub fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    /// A value below `n` (`n > 0`).
    pub fn below(&mut self, n: usize) -> usize {
        (self.next() % n.max(1) as u64) as usize
    }
}
