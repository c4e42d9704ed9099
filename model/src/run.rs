//! Runs as the API and the UI see them.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::RunState;

/// `never | on-success | on-error | always`: whether instances stay up once the run is Ready.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum KeepRunning {
    Never,
    #[default]
    OnSuccess,
    OnError,
    Always,
}

impl KeepRunning {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "never" => Some(Self::Never),
            "on-success" => Some(Self::OnSuccess),
            "on-error" => Some(Self::OnError),
            "always" => Some(Self::Always),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Never => "never",
            Self::OnSuccess => "on-success",
            Self::OnError => "on-error",
            Self::Always => "always",
        }
    }
    /// Whether instances stay up in Ready, given whether the run was aborted.
    pub fn keeps(self, aborted: bool) -> bool {
        match self {
            Self::Never => false,
            Self::Always => true,
            Self::OnSuccess => !aborted,
            Self::OnError => aborted,
        }
    }
}

/// `POST /api/v1/runs`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunRequest {
    /// Path of a deployment or image module.
    pub module: String,
    #[serde(default)]
    pub version: Option<u32>,
    /// `node:input` → value (for an image run: `input` → value).
    #[serde(default)]
    pub params: BTreeMap<String, String>,
    /// node → multiplicity.
    #[serde(default)]
    pub multiplicity: BTreeMap<String, i64>,
    /// node → connector.
    #[serde(default)]
    pub connectors: BTreeMap<String, String>,
    #[serde(default)]
    pub keep_running: Option<KeepRunning>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// Seconds a run may stay in one transitional state (default: the user's profile).
    #[serde(default)]
    pub timeout: Option<i64>,
    /// Stays up in Ready, and instances can be added to or removed from its nodes.
    #[serde(default)]
    pub scalable: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunSummary {
    pub id: String,
    pub owner: String,
    pub module: String,
    pub module_version: u32,
    pub state: RunState,
    pub abort: Option<String>,
    pub keep_running: KeepRunning,
    pub tags: Vec<String>,
    pub created_at: i64,
    pub state_changed_at: i64,
    pub ended_at: Option<i64>,
    /// Instances per connector.
    #[serde(default)]
    pub connectors: BTreeMap<String, u32>,
    /// Instances per state they last completed (`""`: none yet).
    #[serde(default)]
    pub instance_states: BTreeMap<String, u32>,
    #[serde(default)]
    pub scalable: bool,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct InstanceView {
    pub name: String,
    pub node: String,
    pub index: u32,
    pub connector: String,
    pub address: String,
    /// The state this instance last completed.
    pub completed: Option<RunState>,
    pub statecustom: Option<String>,
    pub abort: Option<String>,
    /// Whether the connector still sees the instance running.
    pub running: bool,
    /// In a scaling of a scalable run: `new` (being added) or `leaving` (being removed).
    #[serde(default)]
    pub scale: String,
}

/// `POST /api/v1/runs/<id>/nodes/<node>/instances`: how many instances to add.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleUp {
    #[serde(default = "one")]
    pub count: u32,
}

fn one() -> u32 {
    1
}

/// `DELETE /api/v1/runs/<id>/nodes/<node>/instances`: which instances to remove.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScaleDown {
    pub instances: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RunDetail {
    #[serde(flatten)]
    pub summary: RunSummary,
    pub instances: Vec<InstanceView>,
    pub params: BTreeMap<String, Option<String>>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunEvent {
    pub seq: i64,
    pub at: i64,
    pub kind: String,
    pub message: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogLine {
    pub seq: i64,
    pub at: i64,
    pub instance: String,
    pub stream: String,
    pub line: String,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ReportFile {
    pub instance: String,
    pub file: String,
    pub size: i64,
    pub at: i64,
}

/// How [`RunSummary::instance_states`] counts instances their connector could not start.
pub const START_FAILED: &str = "start-failed";

/// A line of script output as an agent sends it (`POST …/logs` takes a list of them).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PostedLogLine {
    pub instance: String,
    /// `stdout` or `stderr`.
    #[serde(default = "stdout")]
    pub stream: String,
    pub line: String,
}

fn stdout() -> String {
    "stdout".into()
}

/// Which runs a list shows: the dashboard and `GET /api/v1/runs` take the same filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunFilter {
    /// Only runs that have not ended.
    #[serde(default)]
    pub active: bool,
    /// Only runs of modules whose path contains this text (empty: all).
    #[serde(default)]
    pub module: String,
    /// Only runs with exactly this tag (empty: all).
    #[serde(default)]
    pub tag: String,
}

impl RunFilter {
    /// Whether a run passes the module and tag parts (`active` is decided by the query).
    pub fn admits(&self, run: &RunSummary) -> bool {
        (self.module.is_empty() || run.module.contains(&self.module)) && (self.tag.is_empty() || run.tags.iter().any(|t| t == &self.tag))
    }
}

/// A link between two nodes of a deployment, for the run page's graph.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct NodeLink {
    pub from: String,
    pub to: String,
    /// `output → input`.
    pub label: String,
}

/// An image built on a connector, as the image page and the API list them.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct BuiltImage {
    pub connector: String,
    /// The image's name on the connector (`slipstream-build/<path>:v<version>-<key>`).
    pub image: String,
    pub image_id: String,
    /// The module version that was built.
    pub version: u32,
    pub run: String,
    pub built_at: i64,
    /// Whether the latest version uses it (nothing it builds from changed since).
    pub current: bool,
}

/// What the launch form offers for one module version.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchSpec {
    pub module: String,
    /// The version a run from this form deploys.
    pub version: u32,
    /// The module's latest version (the form says when an older one is launched).
    pub latest_version: u32,
    /// The user's default keep-running setting.
    pub keep_running: String,
    /// The connectors this server has.
    pub connectors: Vec<String>,
    pub nodes: Vec<LaunchNode>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchNode {
    pub name: String,
    pub multiplicity: i64,
    pub connector: String,
    pub inputs: Vec<LaunchInput>,
    /// The node's image (its path), for the Build link.
    #[serde(default)]
    pub image: String,
    /// Whether the image has recipes (packages, prerecipe, recipe) at some level.
    #[serde(default)]
    pub has_recipes: bool,
    /// The connectors where the image is built with its current recipes (runs there skip them).
    #[serde(default)]
    pub built_on: Vec<String>,
}

/// One input of a node, as the launch form offers it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct LaunchInput {
    pub name: String,
    /// The value the run gets unless changed: the node's literal value or the default.
    pub value: String,
    pub description: String,
    pub kind: crate::ParamType,
    pub values: Vec<String>,
    /// `othernode:output` when the input is linked (not editable).
    pub linked: Option<String>,
}

/// What the agent of one instance runs: its scripts, root image first.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstancePlan {
    pub run: String,
    pub instance: String,
    pub node: String,
    pub index: u32,
    /// Target name → scripts (module path, version, text), root first.
    pub targets: BTreeMap<String, Vec<PlannedScript>>,
    /// The run's abort flag was raised when the plan was read: the agent need not ask again
    /// before the first script.
    #[serde(default)]
    pub aborted: bool,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedScript {
    pub module: String,
    pub version: u32,
    pub script: String,
}

/// What live views (the websocket) receive.
#[derive(Clone, Debug, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LiveEvent {
    State { run: String, owner: String, state: RunState },
    Param { run: String, owner: String, key: String, value: Option<String> },
    Log { run: String, owner: String, line: LogLine },
    Event { run: String, owner: String, event: RunEvent },
}

impl LiveEvent {
    pub fn owner(&self) -> &str {
        match self {
            LiveEvent::State { owner, .. }
            | LiveEvent::Param { owner, .. }
            | LiveEvent::Log { owner, .. }
            | LiveEvent::Event { owner, .. } => owner,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keep_running_decides_by_outcome() {
        use KeepRunning::*;
        let table = [
            (Never, false, false),
            (Never, true, false),
            (Always, false, true),
            (Always, true, true),
            (OnSuccess, false, true),
            (OnSuccess, true, false),
            (OnError, false, false),
            (OnError, true, true),
        ];
        for (k, aborted, keeps) in table {
            assert_eq!(k.keeps(aborted), keeps, "{k:?} aborted={aborted}");
            assert_eq!(KeepRunning::parse(k.as_str()), Some(k));
        }
    }
}
