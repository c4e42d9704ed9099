//! `slipstream run`'s options as a launch request: `--set node:param=value`,
//! `--multiplicity node=N`, `--connector node=NAME`, each checked with an error that names the
//! option and what is wrong.

use std::collections::BTreeMap;

use model::run::{KeepRunning, RunRequest};

use super::http::{Failure, Result};

#[derive(Debug, Default, Clone)]
pub struct RunOptions {
    pub module: String,
    pub version: Option<u32>,
    pub set: Vec<String>,
    pub multiplicity: Vec<String>,
    pub connector: Vec<String>,
    pub tag: Vec<String>,
    pub keep_running: Option<String>,
    pub state_timeout: Option<i64>,
    pub scalable: bool,
}

fn pair<'a>(option: &str, given: &'a str, shape: &str) -> Result<(&'a str, &'a str)> {
    match given.split_once('=') {
        Some((k, v)) if !k.trim().is_empty() => Ok((k.trim(), v)),
        _ => Err(Failure::usage(format!("--{option} `{given}`: expected {shape}"))),
    }
}

pub fn launch_request(o: &RunOptions) -> Result<RunRequest> {
    let mut params = BTreeMap::new();
    for s in &o.set {
        let (key, value) = pair("set", s, "node:param=value (or param=value for an image)")?;
        if params.insert(key.to_string(), value.to_string()).is_some() {
            return Err(Failure::usage(format!("--set `{key}` is given twice")));
        }
    }
    let mut multiplicity = BTreeMap::new();
    for m in &o.multiplicity {
        let (node, n) = pair("multiplicity", m, "node=N")?;
        let n: i64 = n
            .trim()
            .parse()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| Failure::usage(format!("--multiplicity `{m}`: `{n}` is not a number of instances")))?;
        multiplicity.insert(node.to_string(), n);
    }
    let mut connectors = BTreeMap::new();
    for c in &o.connector {
        let (node, name) = pair("connector", c, "node=NAME")?;
        if name.trim().is_empty() {
            return Err(Failure::usage(format!("--connector `{c}`: no connector name")));
        }
        connectors.insert(node.to_string(), name.trim().to_string());
    }
    let keep_running = match &o.keep_running {
        None => None,
        Some(k) => Some(
            KeepRunning::parse(k)
                .ok_or_else(|| Failure::usage(format!("--keep-running `{k}`: one of never, on-success, on-error, always")))?,
        ),
    };
    if o.module.trim().is_empty() {
        return Err(Failure::usage("no module to run"));
    }
    Ok(RunRequest {
        module: o.module.trim_matches('/').to_string(),
        version: o.version,
        params,
        multiplicity,
        connectors,
        keep_running,
        tags: o.tag.clone(),
        timeout: o.state_timeout,
        scalable: o.scalable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(set: &[&str], multiplicity: &[&str], connector: &[&str], keep: Option<&str>) -> RunOptions {
        RunOptions {
            module: "examples/tutorials/hello/client_server".into(),
            set: set.iter().map(|s| s.to_string()).collect(),
            multiplicity: multiplicity.iter().map(|s| s.to_string()).collect(),
            connector: connector.iter().map(|s| s.to_string()).collect(),
            keep_running: keep.map(String::from),
            ..Default::default()
        }
    }

    #[test]
    fn options_become_the_launch_request() {
        let r =
            launch_request(&opts(&["apache1:port=9090", "testclient1:msg=a=b"], &["testclient1=3"], &["apache1=docker"], Some("never")))
                .unwrap();
        assert_eq!(r.params["apache1:port"], "9090");
        assert_eq!(r.params["testclient1:msg"], "a=b", "only the first = splits");
        assert_eq!(r.multiplicity["testclient1"], 3);
        assert_eq!(r.connectors["apache1"], "docker");
        assert_eq!(r.keep_running, Some(KeepRunning::Never));
    }

    #[test]
    fn bad_options_name_the_option_and_the_reason() {
        let table: [(RunOptions, &str); 7] = [
            (opts(&["apache1:port"], &[], &[], None), "--set `apache1:port`: expected node:param=value"),
            (opts(&["=1"], &[], &[], None), "--set `=1`"),
            (opts(&["a:b=1", "a:b=2"], &[], &[], None), "--set `a:b` is given twice"),
            (opts(&[], &["web=lots"], &[], None), "--multiplicity `web=lots`: `lots` is not a number"),
            (opts(&[], &["web=-1"], &[], None), "is not a number of instances"),
            (opts(&[], &[], &["web="], None), "--connector `web=`: no connector name"),
            (opts(&[], &[], &[], Some("sometimes")), "--keep-running `sometimes`"),
        ];
        for (o, want) in table {
            let e = launch_request(&o).unwrap_err();
            assert_eq!(e.code, super::super::http::exit::USAGE);
            assert!(e.message.contains(want), "{}", e.message);
        }
    }
}
