//! A sweep's grid, decided purely: what varies (`node:multiplicity=1,2,4`, `node:input=a,b`),
//! the points of the grid (every combination), the launch request of each point, and which
//! parameters are collected (`node.*:param`).

use std::collections::BTreeMap;

use model::run::{KeepRunning, RunRequest};
use model::sweep::SweepRequest;

/// Points one sweep may have.
pub const MAX_POINTS: usize = 64;

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Axis {
    /// `node:multiplicity` or `node:input`.
    pub key: String,
    pub values: Vec<String>,
}

pub fn parse_vary(v: &str) -> Result<Axis, String> {
    let (key, values) = v.split_once('=').ok_or_else(|| format!("vary `{v}`: expected node:multiplicity=1,2,4 or node:input=a,b"))?;
    let key = key.trim();
    let (node, what) = key.split_once(':').ok_or_else(|| format!("vary `{v}`: `{key}` is not node:multiplicity or node:input"))?;
    if node.is_empty() || what.is_empty() {
        return Err(format!("vary `{v}`: `{key}` is not node:multiplicity or node:input"));
    }
    let values: Vec<String> = values.split(',').map(|s| s.trim().to_string()).collect();
    if values.iter().any(String::is_empty) {
        return Err(format!("vary `{v}`: an empty value"));
    }
    if what == "multiplicity" {
        if let Some(bad) = values.iter().find(|m| m.parse::<u32>().map_or(true, |m| m > 1000)) {
            return Err(format!("vary `{v}`: `{bad}` is not a multiplicity (0 to 1000)"));
        }
    }
    Ok(Axis { key: key.to_string(), values })
}

/// Every combination of the axes' values, the first axis varying slowest.
pub fn grid(axes: &[Axis]) -> Result<Vec<BTreeMap<String, String>>, String> {
    if axes.is_empty() {
        return Err("vary: say what varies (node:multiplicity=1,2,4)".into());
    }
    for (i, a) in axes.iter().enumerate() {
        if axes[..i].iter().any(|b| b.key == a.key) {
            return Err(format!("vary: `{}` is given twice", a.key));
        }
    }
    let size: usize = axes.iter().map(|a| a.values.len()).product();
    if size > MAX_POINTS {
        return Err(format!("vary: {size} points; a sweep has at most {MAX_POINTS}"));
    }
    let mut points = vec![BTreeMap::new()];
    for a in axes {
        points = points
            .into_iter()
            .flat_map(|p| {
                a.values.iter().map(move |v| {
                    let mut p = p.clone();
                    p.insert(a.key.clone(), v.clone());
                    p
                })
            })
            .collect();
    }
    Ok(points)
}

/// `testsuite:multiplicity=4 apache:port=8081`, in the axes' order.
pub fn label(axes: &[Axis], point: &BTreeMap<String, String>) -> String {
    axes.iter().map(|a| format!("{}={}", a.key, point.get(&a.key).map(String::as_str).unwrap_or(""))).collect::<Vec<_>>().join(" ")
}

/// The launch request of one point: the sweep's fixed settings plus the point's values; runs
/// of a sweep never stay up (the next point needs the quota).
pub fn request_for(sweep: &SweepRequest, sweep_id: &str, point: &BTreeMap<String, String>) -> RunRequest {
    let mut r = RunRequest {
        module: sweep.module.clone(),
        version: sweep.version,
        params: sweep.params.clone(),
        connectors: sweep.connectors.clone(),
        keep_running: Some(KeepRunning::Never),
        tags: sweep.tags.iter().cloned().chain([format!("sweep-{}", &sweep_id[..8.min(sweep_id.len())])]).collect(),
        ..Default::default()
    };
    for (key, value) in point {
        match key.split_once(':') {
            Some((node, "multiplicity")) => {
                r.multiplicity.insert(node.to_string(), value.parse().unwrap_or(0));
            }
            _ => {
                r.params.insert(key.clone(), value.clone());
            }
        }
    }
    r
}

/// What is collected: `node.*:param` (every instance of the node) or `node.3:param`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Collect {
    pub node: String,
    pub index: Option<u32>,
    pub param: String,
}

pub fn parse_collect(s: &str) -> Result<Collect, String> {
    let shape = || format!("collect `{s}`: expected node.*:param (every instance) or node.N:param");
    let (instance, param) = s.trim().split_once(':').ok_or_else(shape)?;
    let (node, index) = instance.rsplit_once('.').ok_or_else(shape)?;
    if node.is_empty() || param.is_empty() {
        return Err(shape());
    }
    let index = match index {
        "*" => None,
        n => Some(n.parse().map_err(|_| shape())?),
    };
    Ok(Collect { node: node.to_string(), index, param: param.to_string() })
}

impl Collect {
    /// Whether `instance` (`testsuite.3` of node `testsuite`) is collected from.
    pub fn takes(&self, node: &str, index: u32) -> bool {
        node == self.node && self.index.is_none_or(|i| i == index)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vary_specs_are_parsed_and_checked() {
        assert_eq!(
            parse_vary("testsuite:multiplicity=1, 2,4"),
            Ok(Axis { key: "testsuite:multiplicity".into(), values: vec!["1".into(), "2".into(), "4".into()] })
        );
        assert_eq!(parse_vary("apache1:port=8080,9090").map(|a| a.values.len()), Ok(2));
        for (bad, why) in [
            ("testsuite:multiplicity", "expected node:multiplicity"),
            ("testsuite=1,2", "is not node:multiplicity or node:input"),
            (":port=1", "is not node:multiplicity"),
            ("web:multiplicity=1,,2", "an empty value"),
            ("web:multiplicity=1,lots", "`lots` is not a multiplicity"),
            ("web:multiplicity=2000", "`2000` is not a multiplicity"),
        ] {
            let e = parse_vary(bad).unwrap_err();
            assert!(e.contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn the_grid_is_every_combination() {
        let a = parse_vary("web:multiplicity=1,2").unwrap();
        let b = parse_vary("web:mode=x,y,z").unwrap();
        let g = grid(&[a.clone(), b.clone()]).unwrap();
        assert_eq!(g.len(), 6);
        assert_eq!(label(&[a.clone(), b.clone()], &g[0]), "web:multiplicity=1 web:mode=x");
        assert_eq!(label(&[a.clone(), b.clone()], &g[5]), "web:multiplicity=2 web:mode=z");
        assert!(grid(&[]).is_err());
        assert!(grid(&[a.clone(), a]).unwrap_err().contains("given twice"));
        let big = parse_vary(&format!("w:multiplicity={}", (0..65).map(|i| i.to_string()).collect::<Vec<_>>().join(","))).unwrap();
        assert!(grid(&[big]).unwrap_err().contains("at most 64"));
    }

    #[test]
    fn each_point_becomes_a_launch_request() {
        let sweep = SweepRequest {
            module: "m/d".into(),
            params: [("web:port".to_string(), "80".to_string())].into(),
            tags: vec!["nightly".into()],
            ..Default::default()
        };
        let point: BTreeMap<String, String> =
            [("web:multiplicity".to_string(), "4".to_string()), ("web:mode".to_string(), "fast".to_string())].into();
        let r = request_for(&sweep, "0123456789", &point);
        assert_eq!(r.multiplicity["web"], 4);
        assert_eq!((r.params["web:mode"].as_str(), r.params["web:port"].as_str()), ("fast", "80"));
        assert_eq!(r.keep_running, Some(KeepRunning::Never));
        assert_eq!(r.tags, ["nightly", "sweep-01234567"]);
    }

    #[test]
    fn collect_patterns_pick_instances() {
        let c = parse_collect("testsuite.*:response_ms").unwrap();
        assert!(c.takes("testsuite", 7) && !c.takes("apache", 1));
        let one = parse_collect("apache.1:load").unwrap();
        assert!(one.takes("apache", 1) && !one.takes("apache", 2));
        for bad in ["response_ms", "testsuite:response_ms", "testsuite.x:y", ".*:y", "t.*:"] {
            assert!(parse_collect(bad).is_err(), "{bad}");
        }
    }
}
