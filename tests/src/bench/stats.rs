//! One setting's trials and the figures the report gives for them.

use serde::{Deserialize, Serialize};

/// The outcome of one failover trial.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    /// Milliseconds without a leader, or `None` when the trial hit its cap first.
    pub downtime_ms: Option<f64>,
    /// Whether the new leader needed more than one election round.
    pub multi_round: bool,
}

/// Every trial of one setting, with what is needed to read them.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// The setting's name, such as `150-155` or `5 × 150-300 SIGKILL`.
    pub label: String,
    /// The minimum election timeout T, in milliseconds: figures are also given as
    /// multiples of it.
    pub min_timeout_ms: f64,
    /// How long a trial may last before it counts as capped, in milliseconds.
    pub cap_ms: f64,
    /// The trials in the order they ran.
    pub trials: Vec<Trial>,
}

impl Summary {
    /// How many trials ran.
    pub fn count(&self) -> usize {
        self.trials.len()
    }

    /// How many trials hit the cap without a new leader.
    pub fn capped(&self) -> usize {
        self.trials
            .iter()
            .filter(|t| t.downtime_ms.is_none())
            .count()
    }

    /// How many trials needed more than one election round.
    pub fn multi_round(&self) -> usize {
        self.trials.iter().filter(|t| t.multi_round).count()
    }

    /// The downtimes of the trials that finished, ascending.
    pub fn sorted(&self) -> Vec<f64> {
        let mut done: Vec<f64> = self.trials.iter().filter_map(|t| t.downtime_ms).collect();
        done.sort_by(f64::total_cmp);
        done
    }

    /// The mean downtime, counting capped trials at the cap; a lower bound when some
    /// were capped (see [`Summary::capped`]).
    pub fn mean(&self) -> Option<f64> {
        if self.trials.is_empty() {
            return None;
        }
        let total: f64 = self
            .trials
            .iter()
            .map(|t| t.downtime_ms.unwrap_or(self.cap_ms))
            .sum();
        Some(total / self.trials.len() as f64)
    }

    /// The nearest-rank `q` quantile (0 < q ≤ 1) over all trials, capped ones ranked
    /// last, so that a quantile among them reads as "above the cap".
    pub fn quantile(&self, q: f64) -> Quantile {
        let n = self.trials.len();
        if n == 0 {
            return Quantile::None;
        }
        let rank = ((q * n as f64).ceil() as usize).clamp(1, n);
        let done = self.sorted();
        match done.get(rank - 1) {
            Some(&value) => Quantile::Value(value),
            None => Quantile::AboveCap,
        }
    }
}

/// A quantile of a setting's downtimes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Quantile {
    /// There were no trials.
    None,
    /// The quantile, in milliseconds.
    Value(f64),
    /// The quantile falls among trials that hit the cap.
    AboveCap,
}

#[cfg(test)]
mod unit {
    use super::*;

    fn summary(values: &[Option<f64>]) -> Summary {
        Summary {
            label: "x".into(),
            min_timeout_ms: 10.0,
            cap_ms: 100.0,
            trials: values
                .iter()
                .map(|&downtime_ms| Trial {
                    downtime_ms,
                    multi_round: false,
                })
                .collect(),
        }
    }

    #[test]
    fn nearest_rank_quantiles_and_capped_trials() {
        let s = summary(&[Some(3.0), Some(1.0), Some(2.0), None]);
        assert_eq!(s.quantile(0.5), Quantile::Value(2.0));
        assert_eq!(s.quantile(0.75), Quantile::Value(3.0));
        assert_eq!(s.quantile(0.99), Quantile::AboveCap);
        assert_eq!(s.mean(), Some(106.0 / 4.0));
        assert_eq!(s.capped(), 1);
    }
}
