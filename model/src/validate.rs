//! Checks of one module on its own: names, kinds, sizes, shapes. Checks that need other
//! modules (references exist, no cycles, links name real outputs, every input resolved) are
//! done by the engine, which can read the store. Every error names the field.

use crate::module::{Category, Module, ModuleKind, ParamType};
use crate::path::{ModulePath, ModuleRef};
use crate::{FieldError, MAX_VALUE_LEN};

/// Parameters every image has, written by the platform.
pub const PLATFORM_OUTPUTS: [&str; 2] = ["hostname", "instanceid"];
/// Names the platform keeps for itself on every instance or node.
pub const RESERVED_PARAMETERS: [&str; 9] =
    ["hostname", "instanceid", "statecustom", "abort", "complete", "url.service", "url.ssh", "multiplicity", "ids"];
pub const MAX_MULTIPLICITY: i64 = 1000;
/// Parameters an image declares (its parents' come on top; each instance gets them all).
pub const MAX_PARAMETERS: usize = 20_000;
/// Nodes of a deployment.
pub const MAX_NODES: usize = 100;
const MAX_SCRIPT_LEN: usize = 256 * 1024;
const MAX_DESCRIPTION_LEN: usize = 4096;
const MAX_NAME_LEN: usize = 64;

/// `\w[\w.-]*`: the parameter-name rule of the original system.
pub fn check_parameter_name(name: &str) -> Result<(), String> {
    let first = name.chars().next().ok_or("a parameter name cannot be empty")?;
    if name.len() > MAX_NAME_LEN {
        return Err(format!("`{name}` is longer than {MAX_NAME_LEN} characters"));
    }
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return Err(format!("`{name}` must start with a letter, a digit or `_`"));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))) {
        return Err(format!("`{name}` contains `{bad}`; use letters, digits, `_`, `.` and `-`"));
    }
    Ok(())
}

/// Node names become key prefixes (`worker.2:hostname`), so no dots, dashes or colons.
pub fn check_node_name(name: &str) -> Result<(), String> {
    let first = name.chars().next().ok_or("a node name cannot be empty")?;
    if name.len() > MAX_NAME_LEN {
        return Err(format!("`{name}` is longer than {MAX_NAME_LEN} characters"));
    }
    if !(first.is_ascii_alphabetic() || first == '_') {
        return Err(format!("`{name}` must start with a letter or `_`"));
    }
    if let Some(bad) = name.chars().find(|c| !(c.is_ascii_alphanumeric() || *c == '_')) {
        return Err(format!("`{name}` contains `{bad}`; node names use letters, digits and `_` only"));
    }
    if name == "ss" {
        return Err("`ss` is reserved for run-level parameters".into());
    }
    Ok(())
}

pub fn check_connector_name(name: &str) -> Result<(), String> {
    let ok = !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_');
    if ok {
        Ok(())
    } else {
        Err(format!("`{name}` is not a connector name (lower-case letters, digits, `-`, `_`)"))
    }
}

/// Splits a link source `node:output`.
pub fn parse_link(raw: &str) -> Result<(&str, &str), String> {
    let (node, output) =
        raw.split_once(':').ok_or_else(|| format!("`{raw}` is not a link; write `node:output`, e.g. `apache1:hostname`"))?;
    check_node_name(node)?;
    check_parameter_name(output)?;
    Ok((node, output))
}

/// Checks one module on its own. Returns every problem found, each naming its field.
/// The longest logo URL kept (a small inline image fits).
pub const MAX_LOGO_LEN: usize = 65_536;

pub fn validate_module(m: &Module) -> Result<(), Vec<FieldError>> {
    let mut errs = Vec::new();
    let module = m.path.clone();
    let mut err = |field: String, reason: String| errs.push(FieldError::new(module.clone(), field, reason));

    if let Err(e) = ModulePath::parse(&m.path) {
        err("path".into(), e);
    }
    if m.description.len() > MAX_DESCRIPTION_LEN {
        err("description".into(), format!("is longer than {MAX_DESCRIPTION_LEN} characters"));
    }
    if let Some(logo) = &m.logo {
        // Shown as an image on public pages: only URLs a browser loads as images, nothing
        // scriptable, and small enough to keep with every version.
        let ok = ["https://", "http://", "/", "data:image/"].iter().any(|p| logo.starts_with(p)) && !logo.starts_with("data:image/svg");
        if !ok {
            err("logo".into(), "must be an http(s) URL, a path on this server, or a data:image/png|jpeg|gif|webp URL".into());
        } else if logo.len() > MAX_LOGO_LEN {
            err("logo".into(), format!("is longer than {MAX_LOGO_LEN} characters"));
        }
    }
    if let Some(c) = &m.comment {
        if c.len() > MAX_DESCRIPTION_LEN {
            err("comment".into(), format!("is longer than {MAX_DESCRIPTION_LEN} characters"));
        }
    }

    // Fields that belong to another kind are errors, not silently dropped.
    let image_fields = [
        ("native", m.native),
        ("images", !m.images.is_empty()),
        ("reference", m.reference.is_some()),
        ("packages", !m.packages.is_empty()),
        ("prerecipe", !m.prerecipe.is_empty()),
        ("recipe", !m.recipe.is_empty()),
        ("targets", !m.targets.is_empty()),
        ("parameters", !m.parameters.is_empty()),
    ];
    let kind = m.kind.as_str();
    if m.kind != ModuleKind::Image {
        for (field, set) in image_fields {
            if set {
                err(field.into(), format!("only images have `{field}`, and this module is a {kind}"));
            }
        }
    }
    if m.kind != ModuleKind::Deployment && !m.nodes.is_empty() {
        err("nodes".into(), format!("only deployments have nodes, and this module is a {kind}"));
    }

    if m.kind == ModuleKind::Image {
        if m.native {
            if m.images.is_empty() {
                err("images".into(), "a native image needs an image id for at least one connector".into());
            }
            if m.reference.is_some() {
                err("reference".into(), "a native image has no parent; remove `reference` or untick native".into());
            }
        } else {
            match &m.reference {
                None => err("reference".into(), "choose a parent image, or mark the image native".into()),
                Some(r) => {
                    if let Err(e) = ModuleRef::parse(r) {
                        err("reference".into(), e);
                    }
                }
            }
        }
        for (connector, id) in &m.images {
            if let Err(e) = check_connector_name(connector) {
                err(format!("images.{connector}"), e);
            }
            if id.trim().is_empty() {
                err(format!("images.{connector}"), "the image id is empty".into());
            }
        }
        for (i, p) in m.packages.iter().enumerate() {
            if p.trim().is_empty() || p.contains(char::is_whitespace) {
                err(format!("packages.{i}"), format!("`{p}` is not a package name"));
            }
        }
        for (field, script) in [("prerecipe", &m.prerecipe), ("recipe", &m.recipe)] {
            if script.len() > MAX_SCRIPT_LEN {
                err(field.into(), format!("is longer than {MAX_SCRIPT_LEN} bytes"));
            }
        }
        for (name, script) in m.targets.iter() {
            if script.len() > MAX_SCRIPT_LEN {
                err(format!("targets.{name}"), format!("is longer than {MAX_SCRIPT_LEN} bytes"));
            }
        }
        if m.parameters.len() > MAX_PARAMETERS {
            err("parameters".into(), format!("{} parameters; an image declares at most {MAX_PARAMETERS}", m.parameters.len()));
        }
        let mut seen = std::collections::BTreeSet::new();
        for p in &m.parameters {
            let field = format!("parameters.{}", p.name);
            if let Err(e) = check_parameter_name(&p.name) {
                err("parameters".into(), e);
                continue;
            }
            if RESERVED_PARAMETERS.contains(&p.name.as_str()) {
                err(field.clone(), format!("`{}` is provided by the platform and cannot be declared", p.name));
            }
            if !seen.insert(p.name.clone()) {
                err(field.clone(), format!("`{}` is declared twice", p.name));
            }
            if let Some(d) = &p.default {
                if d.len() > MAX_VALUE_LEN {
                    err(format!("{field}.default"), format!("is {} characters; the limit is {MAX_VALUE_LEN}", d.len()));
                }
            }
            if p.description.len() > MAX_DESCRIPTION_LEN {
                err(format!("{field}.description"), format!("is longer than {MAX_DESCRIPTION_LEN} characters"));
            }
            match p.kind {
                ParamType::Enum => {
                    if p.values.is_empty() {
                        err(format!("{field}.values"), "an enum parameter needs its list of values".into());
                    }
                    if let Some(d) = &p.default {
                        if !p.values.contains(d) {
                            err(format!("{field}.default"), format!("`{d}` is not one of the values {:?}", p.values));
                        }
                    }
                }
                ParamType::Boolean => {
                    if let Some(d) = &p.default {
                        if d != "true" && d != "false" {
                            err(format!("{field}.default"), format!("`{d}` is not `true` or `false`"));
                        }
                    }
                }
                _ => {
                    if !p.values.is_empty() {
                        err(format!("{field}.values"), "only enum parameters have a list of values".into());
                    }
                }
            }
            if p.category == Category::Output && p.kind == ParamType::Secret {
                // allowed: an output can be a generated password (e.g. of an RStudio server)
            }
        }
    }

    if m.kind == ModuleKind::Deployment {
        if m.nodes.is_empty() {
            err("nodes".into(), "a deployment needs at least one node".into());
        }
        if m.nodes.len() > MAX_NODES {
            err("nodes".into(), format!("{} nodes; a deployment has at most {MAX_NODES}", m.nodes.len()));
        }
        for (name, node) in &m.nodes {
            let field = format!("nodes.{name}");
            if let Err(e) = check_node_name(name) {
                err(field.clone(), e);
            }
            if let Err(e) = ModuleRef::parse(&node.image) {
                err(format!("{field}.image"), e);
            }
            if !(0..=MAX_MULTIPLICITY).contains(&node.multiplicity) {
                err(
                    format!("{field}.multiplicity"),
                    format!("{} is out of range; a node has 0 to {MAX_MULTIPLICITY} instances", node.multiplicity),
                );
            }
            if let Some(c) = &node.connector {
                if let Err(e) = check_connector_name(c) {
                    err(format!("{field}.connector"), e);
                }
            }
            for (input, value) in &node.values {
                if let Err(e) = check_parameter_name(input) {
                    err(format!("{field}.values"), e);
                }
                if value.len() > MAX_VALUE_LEN {
                    err(format!("{field}.values.{input}"), format!("is {} characters; the limit is {MAX_VALUE_LEN}", value.len()));
                }
                if node.links.contains_key(input) {
                    err(format!("{field}.values.{input}"), format!("`{input}` has both a value and a link; keep one"));
                }
            }
            for (input, source) in &node.links {
                let lfield = format!("{field}.links.{input}");
                if let Err(e) = check_parameter_name(input) {
                    err(lfield.clone(), e);
                }
                match parse_link(source) {
                    Err(e) => err(lfield, e),
                    Ok((other, _)) if !m.nodes.contains_key(other) => {
                        err(lfield, format!("links `{source}`, but the deployment has no node `{other}`"))
                    }
                    Ok(_) => {}
                }
            }
        }
    }

    if errs.is_empty() {
        Ok(())
    } else {
        Err(errs)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::module::{Node, Parameter};

    /// (what, a change to a valid module, the field the error names).
    type Case = (&'static str, Box<dyn Fn(&mut Module)>, &'static str);

    fn image() -> Module {
        Module { kind: ModuleKind::Image, path: "p/img".into(), reference: Some("p/base".into()), ..Default::default() }
    }

    fn first_field(m: &Module) -> String {
        validate_module(m).unwrap_err()[0].field.clone()
    }

    #[test]
    fn a_plain_derived_image_is_valid() {
        assert_eq!(validate_module(&image()), Ok(()));
    }

    #[test]
    fn each_rule_names_its_field() {
        let p = |name: &str| Parameter { name: name.into(), ..Default::default() };
        let cases: Vec<Case> = vec![
            ("bad path", Box::new(|m| m.path = "a b".into()), "path"),
            ("no parent", Box::new(|m| m.reference = None), "reference"),
            (
                "native without ids",
                Box::new(|m| {
                    m.reference = None;
                    m.native = true;
                }),
                "images",
            ),
            ("bad reference", Box::new(|m| m.reference = Some("x@y".into())), "reference"),
            ("bad parameter name", Box::new(move |m| m.parameters = vec![p("a b")]), "parameters"),
            ("reserved parameter", Box::new(move |m| m.parameters = vec![p("hostname")]), "parameters.hostname"),
            ("duplicate parameter", Box::new(move |m| m.parameters = vec![p("x"), p("x")]), "parameters.x"),
            (
                "too many parameters",
                Box::new(move |m| m.parameters = (0..=MAX_PARAMETERS).map(|i| p(&format!("p{i}"))).collect()),
                "parameters",
            ),
            (
                "default too long",
                Box::new(|m| m.parameters = vec![Parameter { name: "x".into(), default: Some("v".repeat(4097)), ..Default::default() }]),
                "parameters.x.default",
            ),
            (
                "enum without values",
                Box::new(|m| m.parameters = vec![Parameter { name: "e".into(), kind: ParamType::Enum, ..Default::default() }]),
                "parameters.e.values",
            ),
            (
                "boolean default",
                Box::new(|m| {
                    m.parameters =
                        vec![Parameter { name: "b".into(), kind: ParamType::Boolean, default: Some("yes".into()), ..Default::default() }]
                }),
                "parameters.b.default",
            ),
            (
                "nodes on an image",
                Box::new(|m| {
                    m.nodes.insert("n".into(), Node { image: "i".into(), ..Default::default() });
                }),
                "nodes",
            ),
            (
                "bad connector",
                Box::new(|m| {
                    m.images.insert("Bad Name".into(), "x".into());
                }),
                "images.Bad Name",
            ),
        ];
        for (what, change, field) in cases {
            let mut m = image();
            change(&mut m);
            assert_eq!(first_field(&m), field, "{what}");
        }
    }

    fn deployment() -> Module {
        let mut m = Module { kind: ModuleKind::Deployment, path: "p/d".into(), ..Default::default() };
        m.nodes.insert("web".into(), Node { image: "p/img".into(), ..Default::default() });
        m.nodes.insert("client".into(), Node { image: "p/client".into(), ..Default::default() });
        m
    }

    #[test]
    fn deployment_rules_name_their_field() {
        assert_eq!(validate_module(&deployment()), Ok(()));
        let cases: Vec<Case> = vec![
            ("no nodes", Box::new(|m| m.nodes.clear()), "nodes"),
            (
                "too many nodes",
                Box::new(|m| {
                    for i in 0..MAX_NODES {
                        m.nodes.insert(format!("n{i}"), Node { image: "p/img".into(), ..Default::default() });
                    }
                }),
                "nodes",
            ),
            ("multiplicity < 0", Box::new(|m| m.nodes.get_mut("web").unwrap().multiplicity = -1), "nodes.web.multiplicity"),
            ("multiplicity too big", Box::new(|m| m.nodes.get_mut("web").unwrap().multiplicity = 1001), "nodes.web.multiplicity"),
            (
                "bad node name",
                Box::new(|m| {
                    let n = m.nodes.remove("web").unwrap();
                    m.nodes.insert("we-b".into(), n);
                }),
                "nodes.we-b",
            ),
            (
                "link to a missing node",
                Box::new(|m| {
                    m.nodes.get_mut("client").unwrap().links.insert("server".into(), "db:hostname".into());
                }),
                "nodes.client.links.server",
            ),
            (
                "link without colon",
                Box::new(|m| {
                    m.nodes.get_mut("client").unwrap().links.insert("server".into(), "web".into());
                }),
                "nodes.client.links.server",
            ),
            (
                "value too long",
                Box::new(|m| {
                    m.nodes.get_mut("client").unwrap().values.insert("x".into(), "v".repeat(4097));
                }),
                "nodes.client.values.x",
            ),
            (
                "value and link",
                Box::new(|m| {
                    let n = m.nodes.get_mut("client").unwrap();
                    n.values.insert("x".into(), "1".into());
                    n.links.insert("x".into(), "web:hostname".into());
                }),
                "nodes.client.values.x",
            ),
            ("image field on a deployment", Box::new(|m| m.recipe = "x".into()), "recipe"),
        ];
        for (what, change, field) in cases {
            let mut m = deployment();
            change(&mut m);
            assert_eq!(first_field(&m), field, "{what}");
        }
    }

    #[test]
    fn a_value_of_exactly_4096_characters_is_accepted() {
        let mut m = deployment();
        m.nodes.get_mut("client").unwrap().values.insert("x".into(), "v".repeat(4096));
        assert_eq!(validate_module(&m), Ok(()));
    }

    #[test]
    fn logos_must_be_image_urls() {
        let with = |logo: &str| Module { kind: ModuleKind::Project, path: "p".into(), logo: Some(logo.into()), ..Default::default() };
        for ok in ["https://example.org/l.png", "/static/l.png", "data:image/png;base64,iVBORw0KGgo="] {
            assert!(validate_module(&with(ok)).is_ok(), "{ok}");
        }
        for bad in ["javascript:alert(1)", "data:text/html,<b>", "data:image/svg+xml,<svg onload=x>", "logo.png"] {
            let e = validate_module(&with(bad)).unwrap_err();
            assert_eq!(e[0].field, "logo", "{bad}");
        }
    }
}
