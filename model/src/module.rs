//! The module document. One schema serves the JSON API, the YAML files (`docs/modules.md`)
//! and the UI: every kind shares one struct, and [`crate::validate`] rejects fields that do not
//! belong to the kind, naming them.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer, Serialize};

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ModuleKind {
    #[default]
    Project,
    Image,
    Deployment,
}

impl ModuleKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Project => "project",
            Self::Image => "image",
            Self::Deployment => "deployment",
        }
    }
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "project" => Some(Self::Project),
            "image" => Some(Self::Image),
            "deployment" => Some(Self::Deployment),
            _ => None,
        }
    }
}

/// Rights given to every signed-in user (the owner and administrators have them all).
/// A published module can also be read anonymously.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PublicRights {
    #[serde(default)]
    pub read: bool,
    #[serde(default)]
    pub write: bool,
    #[serde(default)]
    pub deploy: bool,
}

impl PublicRights {
    /// Writing or deploying what one cannot read makes no sense: both imply read.
    pub fn normalized(self) -> Self {
        Self { read: self.read || self.write || self.deploy, ..self }
    }
}

/// A module as stored and exchanged. Metadata fields (`version`, `owner`, `author`,
/// `created_at`) are filled on the way out and ignored on the way in; `comment` on the way in
/// is the commit message of the new version.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Module {
    pub kind: ModuleKind,
    /// May be left out of a `PUT /api/v1/modules/<path>` body: the URL names it.
    #[serde(default)]
    pub path: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,

    // --- image ---
    /// A native image points at an existing image per connector instead of a parent.
    #[serde(default, skip_serializing_if = "is_false")]
    pub native: bool,
    /// Connector name → image id on that connector (`{local: host, docker: "busybox:stable"}`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub images: BTreeMap<String, String>,
    /// Parent image of a derived image: `path` (latest) or `path@N`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub packages: Vec<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub prerecipe: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub recipe: String,
    #[serde(default, skip_serializing_if = "Targets::is_empty")]
    pub targets: Targets,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub parameters: Vec<Parameter>,

    // --- deployment ---
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub nodes: BTreeMap<String, Node>,

    // --- module-level settings (not versioned) ---
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public: Option<PublicRights>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<bool>,

    // --- metadata ---
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub owner: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// Milliseconds since the Unix epoch.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

impl Module {
    /// The versioned content: the document without settings and metadata. Two modules with
    /// equal content are the same definition.
    pub fn content(&self) -> Module {
        Module { public: None, published: None, version: None, owner: None, author: None, created_at: None, comment: None, ..self.clone() }
    }

    pub fn input(&self, name: &str) -> Option<&Parameter> {
        self.parameters.iter().find(|p| p.name == name && p.category == Category::Input)
    }
}

/// One line of a project listing or of the catalog.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ModuleSummary {
    pub path: String,
    pub kind: ModuleKind,
    pub description: String,
    pub owner: String,
    pub version: u32,
    pub public: PublicRights,
    pub published: bool,
    pub updated_at: i64,
}

/// One card of the catalog: a published image or deployment, with its logo.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CatalogEntry {
    #[serde(flatten)]
    pub summary: ModuleSummary,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logo: Option<String>,
}

/// One entry of a module's history.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct VersionInfo {
    pub version: u32,
    pub author: String,
    pub created_at: i64,
    pub comment: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Targets {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub execute: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub report: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub onvmadd: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub onvmremove: String,
}

impl Targets {
    pub const NAMES: [&'static str; 4] = ["execute", "report", "onvmadd", "onvmremove"];

    pub fn is_empty(&self) -> bool {
        self.iter().all(|(_, s)| s.is_empty())
    }
    pub fn get(&self, name: &str) -> Option<&str> {
        self.iter().find(|(n, _)| *n == name).map(|(_, s)| s)
    }
    pub fn iter(&self) -> impl Iterator<Item = (&'static str, &str)> {
        [
            ("execute", self.execute.as_str()),
            ("report", self.report.as_str()),
            ("onvmadd", self.onvmadd.as_str()),
            ("onvmremove", self.onvmremove.as_str()),
        ]
        .into_iter()
    }
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Category {
    #[default]
    Input,
    Output,
}

#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ParamType {
    #[default]
    String,
    Text,
    Secret,
    Boolean,
    Enum,
}

impl ParamType {
    fn is_string(&self) -> bool {
        *self == ParamType::String
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Parameter {
    pub name: String,
    #[serde(default)]
    pub category: Category,
    #[serde(default, skip_serializing_if = "Option::is_none", deserialize_with = "opt_scalar")]
    pub default: Option<String>,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(default, rename = "type", skip_serializing_if = "ParamType::is_string")]
    pub kind: ParamType,
    /// The choices of an `enum` parameter.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub values: Vec<String>,
}

/// A node of a deployment: `multiplicity` instances of one image.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Node {
    pub image: String,
    #[serde(default = "one")]
    pub multiplicity: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connector: Option<String>,
    /// Literal values for inputs of the image.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty", deserialize_with = "scalar_map")]
    pub values: BTreeMap<String, String>,
    /// `input` → `othernode:output`: the input receives the output's value when it is written.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub links: BTreeMap<String, String>,
}

impl Default for Node {
    fn default() -> Self {
        Self { image: String::new(), multiplicity: 1, connector: None, values: BTreeMap::new(), links: BTreeMap::new() }
    }
}

fn one() -> i64 {
    1
}

fn is_false(b: &bool) -> bool {
    !*b
}

/// YAML writers put `default: 8080` as readily as `default: "8080"`; parameter values are
/// strings, so any scalar is taken as its text.
#[derive(Deserialize)]
#[serde(untagged)]
enum Scalar {
    S(String),
    I(i64),
    F(f64),
    B(bool),
}

impl From<Scalar> for String {
    fn from(s: Scalar) -> String {
        match s {
            Scalar::S(s) => s,
            Scalar::I(i) => i.to_string(),
            Scalar::F(f) => f.to_string(),
            Scalar::B(b) => b.to_string(),
        }
    }
}

fn opt_scalar<'de, D: Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    Ok(Option::<Scalar>::deserialize(d)?.map(String::from))
}

fn scalar_map<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, String>, D::Error> {
    let raw = BTreeMap::<String, Scalar>::deserialize(d)?;
    Ok(raw.into_iter().map(|(k, v)| (k, v.into())).collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_round_trip_keeps_every_field() {
        let m = Module {
            kind: ModuleKind::Image,
            path: "a/b".into(),
            reference: Some("a/base@2".into()),
            parameters: vec![Parameter {
                name: "port".into(),
                category: Category::Output,
                default: Some("8080".into()),
                ..Default::default()
            }],
            targets: Targets { execute: "#!/bin/sh\n".into(), ..Default::default() },
            ..Default::default()
        };
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(serde_json::from_str::<Module>(&json).unwrap(), m);
    }

    #[test]
    fn scalars_are_taken_as_text() {
        let m: Module = serde_json::from_str(
            r#"{"kind":"deployment","path":"d","nodes":{"n":{"image":"i","values":{"a":1,"b":true}}},
               "parameters":[{"name":"p","default":8080}]}"#,
        )
        .unwrap();
        assert_eq!(m.nodes["n"].values["a"], "1");
        assert_eq!(m.nodes["n"].values["b"], "true");
        assert_eq!(m.parameters[0].default.as_deref(), Some("8080"));
        assert_eq!(m.nodes["n"].multiplicity, 1);
    }

    #[test]
    fn unknown_fields_are_rejected() {
        let err = serde_json::from_str::<Module>(r#"{"kind":"image","path":"a","recipie":"x"}"#).unwrap_err();
        assert!(err.to_string().contains("recipie"), "{err}");
    }
}
