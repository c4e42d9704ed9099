//! Runtime-parameter keys: `<node>.<i>:<name>` (instance), `<node>:<name>` (= `<node>.1:<name>`,
//! except the node-level `multiplicity` and `ids`), `ss:<name>` (run-level). Parsed once at the
//! edge; the same parser serves the API, the UI and the agent.

use std::fmt;

use crate::validate::{check_node_name, check_parameter_name};

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum KeyOwner {
    /// `ss:` run-level parameters.
    Run,
    /// Node-level parameters: only `multiplicity` and `ids`.
    Node(String),
    Instance(String, u32),
}

#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamKey {
    pub owner: KeyOwner,
    pub name: String,
}

pub const NODE_LEVEL: [&str; 2] = ["multiplicity", "ids"];

impl ParamKey {
    /// Parses a fully written key. `apache:port` means `apache.1:port`, except for the
    /// node-level names.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let (owner, name) =
            raw.split_once(':').ok_or_else(|| format!("`{raw}` is not a parameter key; write `node.1:name`, `node:name` or `ss:name`"))?;
        check_parameter_name(name).map_err(|e| format!("key `{raw}`: {e}"))?;
        let owner = if owner == "ss" {
            KeyOwner::Run
        } else if let Some((node, index)) = owner.split_once('.') {
            check_node_name(node).map_err(|e| format!("key `{raw}`: {e}"))?;
            let index: u32 = index
                .parse()
                .ok()
                .filter(|i| *i >= 1)
                .ok_or_else(|| format!("key `{raw}`: `{index}` is not an instance number (1, 2, …)"))?;
            if NODE_LEVEL.contains(&name) {
                KeyOwner::Node(node.to_string())
            } else {
                KeyOwner::Instance(node.to_string(), index)
            }
        } else {
            check_node_name(owner).map_err(|e| format!("key `{raw}`: {e}"))?;
            if NODE_LEVEL.contains(&name) {
                KeyOwner::Node(owner.to_string())
            } else {
                KeyOwner::Instance(owner.to_string(), 1)
            }
        };
        Ok(Self { owner, name: name.to_string() })
    }

    /// Parses a key as written on a node: a bare name means the calling instance's own
    /// parameter (`ss-set ready true`), or its node's for `multiplicity` and `ids`.
    pub fn parse_relative(raw: &str, node: &str, index: u32) -> Result<Self, String> {
        if raw.contains(':') {
            return Self::parse(raw);
        }
        check_parameter_name(raw).map_err(|e| format!("key `{raw}`: {e}"))?;
        let owner = if NODE_LEVEL.contains(&raw) { KeyOwner::Node(node.to_string()) } else { KeyOwner::Instance(node.to_string(), index) };
        Ok(Self { owner, name: raw.to_string() })
    }
}

impl fmt::Display for ParamKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.owner {
            KeyOwner::Run => write!(f, "ss:{}", self.name),
            KeyOwner::Node(n) => write!(f, "{n}:{}", self.name),
            KeyOwner::Instance(n, i) => write!(f, "{n}.{i}:{}", self.name),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_written_canonically() {
        let table = [
            ("worker.2:hostname", "worker.2:hostname"),
            ("apache:port", "apache.1:port"),
            ("worker:multiplicity", "worker:multiplicity"),
            ("worker.1:multiplicity", "worker:multiplicity"),
            ("worker:ids", "worker:ids"),
            ("ss:abort", "ss:abort"),
            ("ss:url.service", "ss:url.service"),
        ];
        for (raw, canonical) in table {
            assert_eq!(ParamKey::parse(raw).unwrap().to_string(), canonical, "{raw}");
        }
    }

    #[test]
    fn malformed_keys_say_why() {
        for (raw, why) in [
            ("hostname", "not a parameter key"),
            ("a.0:x", "instance number"),
            ("a.x:x", "instance number"),
            ("a-b:x", "contains `-`"),
            ("a:", "empty"),
        ] {
            let e = ParamKey::parse(raw).unwrap_err();
            assert!(e.contains(why), "{raw}: {e}");
        }
    }

    #[test]
    fn bare_names_are_the_callers_own() {
        assert_eq!(ParamKey::parse_relative("ready", "apache", 2).unwrap().to_string(), "apache.2:ready");
        assert_eq!(ParamKey::parse_relative("multiplicity", "apache", 2).unwrap().to_string(), "apache:multiplicity");
        assert_eq!(ParamKey::parse_relative("web:port", "client", 3).unwrap().to_string(), "web.1:port");
    }
}
