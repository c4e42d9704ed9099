//! Parameter sweeps: one deployment launched over a grid of values, an output parameter
//! collected from every instance of every run, and its statistics per grid point.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::RunState;

/// `POST /api/v1/sweeps`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepRequest {
    /// The deployment (or image) to run.
    pub module: String,
    #[serde(default)]
    pub version: Option<u32>,
    /// What varies: `node:multiplicity=1,2,4,8` or `node:input=a,b`; several make a grid.
    pub vary: Vec<String>,
    /// The output collected from the instances: `node.*:param` (or `node.1:param`).
    pub collect: String,
    /// How many runs at once (default 1: one after another).
    #[serde(default)]
    pub parallel: Option<u32>,
    /// Fixed for every run: input values, connectors.
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    #[serde(default)]
    pub connectors: BTreeMap<String, String>,
    #[serde(default)]
    pub tags: Vec<String>,
}

/// One collected value.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    pub instance: String,
    pub value: f64,
}

/// Mean, median and 95th percentile of a point's samples.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Stats {
    pub n: usize,
    pub mean: f64,
    pub median: f64,
    pub p95: f64,
}

impl Stats {
    /// `None` for no samples. Percentiles by nearest rank.
    pub fn of(values: &[f64]) -> Option<Self> {
        if values.is_empty() {
            return None;
        }
        let mut v = values.to_vec();
        v.sort_by(f64::total_cmp);
        let rank = |p: f64| v[((p * v.len() as f64).ceil() as usize).clamp(1, v.len()) - 1];
        let median = if v.len() % 2 == 1 { v[v.len() / 2] } else { (v[v.len() / 2 - 1] + v[v.len() / 2]) / 2.0 };
        Some(Self { n: v.len(), mean: v.iter().sum::<f64>() / v.len() as f64, median, p95: rank(0.95) })
    }
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SweepPoint {
    pub index: u32,
    /// The varied keys and their values at this point.
    pub values: BTreeMap<String, String>,
    /// `testsuite:multiplicity=4`, for tables and the chart's axis.
    pub label: String,
    /// The run, once launched.
    pub run: Option<String>,
    pub state: Option<RunState>,
    /// Values that are not numbers are left out (and counted in `unreadable`).
    pub samples: Vec<Sample>,
    #[serde(default)]
    pub unreadable: u32,
    pub stats: Option<Stats>,
}

/// A sweep in the list of sweeps (`GET /api/v1/sweeps`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SweepSummary {
    pub id: String,
    pub module: String,
    pub state: String,
    pub created_at: i64,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub id: String,
    pub owner: String,
    pub module: String,
    pub vary: Vec<String>,
    pub collect: String,
    pub parallel: u32,
    /// `running`, `done` (every run ended) or `stopped`.
    pub state: String,
    pub created_at: i64,
    pub ended_at: Option<i64>,
    pub points: Vec<SweepPoint>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statistics_of_samples() {
        assert_eq!(Stats::of(&[]), None);
        let s = Stats::of(&[4.0, 1.0, 3.0, 2.0]).unwrap();
        assert_eq!((s.n, s.mean, s.median, s.p95), (4, 2.5, 2.5, 4.0));
        let hundred: Vec<f64> = (1..=100).map(f64::from).collect();
        let s = Stats::of(&hundred).unwrap();
        assert_eq!((s.median, s.p95), (50.5, 95.0));
        assert_eq!(Stats::of(&[7.0]).map(|s| (s.median, s.p95)), Some((7.0, 7.0)));
    }
}
