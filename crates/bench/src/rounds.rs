//! Alternating rounds and what they say: the median ratio of connvault to
//! its baseline (and to PostgreSQL) with the spread over rounds, and whether
//! a goal is met, missed or inside the spread (too noisy to conclude).

use serde::Serialize;

/// A goal for one scenario's method.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Goal {
    /// Least throughput as a ratio of the echo baseline's.
    pub(crate) min_ratio: f64,
    /// Most p99 latency as a ratio of the baseline's.
    pub(crate) max_p99_ratio: Option<f64>,
    /// Least throughput as a ratio of the PostgreSQL peer's (when measured).
    pub(crate) min_peer_ratio: Option<f64>,
}

/// The goals of docs/performance.md, by scenario and method.
pub(crate) fn goal(scenario: &str, method: &str) -> Option<Goal> {
    let goal = |min_ratio, max_p99_ratio, min_peer_ratio| Goal {
        min_ratio,
        max_p99_ratio,
        min_peer_ratio,
    };
    match (scenario, method) {
        ("get", "get") => Some(goal(0.85, Some(1.2), Some(1.0))),
        ("list", "list") => Some(goal(0.7, None, None)),
        ("create", "create") => Some(goal(0.35, None, Some(1.0))),
        ("update", "update") | ("delete", "delete") => Some(goal(0.35, None, None)),
        _ => None,
    }
}

/// The median and the range of a set of figures.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub(crate) struct Spread {
    /// The median (the mean of the middle two for an even count).
    pub(crate) median: f64,
    /// The smallest figure.
    pub(crate) min: f64,
    /// The largest figure.
    pub(crate) max: f64,
}

impl Spread {
    /// Summarizes `values`; `None` when there are none.
    pub(crate) fn of(values: &[f64]) -> Option<Spread> {
        let mut sorted: Vec<f64> = values.iter().copied().filter(|v| v.is_finite()).collect();
        if sorted.is_empty() {
            return None;
        }
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Some(Spread {
            median,
            min: sorted[0],
            max: sorted[n - 1],
        })
    }

    /// The range as a fraction of the median.
    pub(crate) fn relative_width(&self) -> f64 {
        (self.max - self.min) / self.median.abs().max(1e-9)
    }
}

/// How a figure compares with its bound.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum Verdict {
    /// Every round is on the right side of the bound.
    Met,
    /// Every round is on the wrong side.
    NotMet,
    /// The bound lies inside the rounds' spread: the run cannot tell.
    Inconclusive,
}

impl Verdict {
    /// Judges a "higher is better" figure against its least value.
    pub(crate) fn at_least(spread: &Spread, bound: f64) -> Verdict {
        if spread.min >= bound {
            Verdict::Met
        } else if spread.max < bound {
            Verdict::NotMet
        } else {
            Verdict::Inconclusive
        }
    }

    /// Judges a "lower is better" figure against its most value.
    pub(crate) fn at_most(spread: &Spread, bound: f64) -> Verdict {
        if spread.max <= bound {
            Verdict::Met
        } else if spread.min > bound {
            Verdict::NotMet
        } else {
            Verdict::Inconclusive
        }
    }

    /// The worse of two verdicts (not met over inconclusive over met).
    pub(crate) fn and(self, other: Verdict) -> Verdict {
        use Verdict::*;
        match (self, other) {
            (NotMet, _) | (_, NotMet) => NotMet,
            (Inconclusive, _) | (_, Inconclusive) => Inconclusive,
            (Met, Met) => Met,
        }
    }

    /// How the table shows it.
    pub(crate) fn label(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::NotMet => "NOT met",
            Verdict::Inconclusive => "inside the spread: cannot conclude",
        }
    }
}

/// Ratios of each round: `numerators[i] / denominators[i]`.
pub(crate) fn ratios(numerators: &[f64], denominators: &[f64]) -> Vec<f64> {
    numerators
        .iter()
        .zip(denominators)
        .map(|(n, d)| n / d.max(1e-9))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_median_of_odd_and_even_counts() {
        let odd = Spread::of(&[3.0, 1.0, 2.0]).unwrap();
        assert_eq!((odd.median, odd.min, odd.max), (2.0, 1.0, 3.0));
        let even = Spread::of(&[4.0, 1.0, 2.0, 3.0]).unwrap();
        assert_eq!(even.median, 2.5);
        assert!(Spread::of(&[]).is_none());
        assert!(Spread::of(&[f64::NAN]).is_none());
    }

    #[test]
    fn a_bound_inside_the_spread_is_inconclusive() {
        let spread = Spread::of(&[0.80, 0.84, 0.88]).unwrap();
        assert_eq!(Verdict::at_least(&spread, 0.85), Verdict::Inconclusive);
        assert_eq!(Verdict::at_least(&spread, 0.80), Verdict::Met);
        assert_eq!(Verdict::at_least(&spread, 0.90), Verdict::NotMet);
        assert_eq!(Verdict::at_most(&spread, 0.90), Verdict::Met);
        assert_eq!(Verdict::at_most(&spread, 0.70), Verdict::NotMet);
        assert_eq!(
            Verdict::Met.and(Verdict::Inconclusive),
            Verdict::Inconclusive
        );
        assert_eq!(Verdict::Inconclusive.and(Verdict::NotMet), Verdict::NotMet);
        assert!((spread.relative_width() - 0.08 / 0.84).abs() < 1e-9);
    }

    #[test]
    fn ratios_pair_each_round() {
        assert_eq!(ratios(&[2.0, 3.0], &[4.0, 3.0]), vec![0.5, 1.0]);
    }
}
