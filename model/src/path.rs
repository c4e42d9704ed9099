//! Module paths (`examples/tutorials/hello/apache`) and references to a module version
//! (`examples/images/busybox` floats to the latest version, `examples/images/busybox@3` pins one).

use std::fmt;

/// Segments the API uses after a module path; a module cannot be named like them.
pub const RESERVED_SEGMENTS: &[&str] = &["versions"];
const MAX_PATH_LEN: usize = 200;
const MAX_SEGMENT_LEN: usize = 64;

/// A validated module path: `/`-separated segments of letters, digits, `_`, `-` and `.`,
/// each starting with a letter, digit or `_`, not only digits (that would read as a version).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct ModulePath(String);

impl ModulePath {
    /// Parses a path; the error says what is wrong with it, without naming a field.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let raw = raw.trim_matches('/');
        if raw.is_empty() {
            return Err("a module path cannot be empty".into());
        }
        if raw.len() > MAX_PATH_LEN {
            return Err(format!("a module path has at most {MAX_PATH_LEN} characters"));
        }
        for segment in raw.split('/') {
            check_segment(segment)?;
        }
        Ok(Self(raw.to_string()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The last segment: the module's own name.
    pub fn name(&self) -> &str {
        self.0.rsplit('/').next().unwrap_or(&self.0)
    }

    /// The enclosing project, or `None` for a root module.
    pub fn parent(&self) -> Option<ModulePath> {
        self.0.rsplit_once('/').map(|(p, _)| ModulePath(p.to_string()))
    }

    /// Every enclosing project, outermost first.
    pub fn ancestors(&self) -> Vec<ModulePath> {
        let mut out = Vec::new();
        let mut cur = self.parent();
        while let Some(p) = cur {
            cur = p.parent();
            out.push(p);
        }
        out.reverse();
        out
    }

    /// True when `self` is `other` or lies below it.
    pub fn is_within(&self, other: &ModulePath) -> bool {
        self.0 == other.0 || (self.0.starts_with(&other.0) && self.0.as_bytes().get(other.0.len()) == Some(&b'/'))
    }
}

fn check_segment(segment: &str) -> Result<(), String> {
    if segment.is_empty() {
        return Err("a module path cannot contain an empty segment (`//`)".into());
    }
    if segment.len() > MAX_SEGMENT_LEN {
        return Err(format!("`{segment}` is longer than {MAX_SEGMENT_LEN} characters"));
    }
    let first = segment.chars().next().unwrap_or('-');
    if !(first.is_ascii_alphanumeric() || first == '_') {
        return Err(format!("`{segment}` must start with a letter, a digit or `_`"));
    }
    if let Some(bad) = segment.chars().find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))) {
        return Err(format!("`{segment}` contains `{bad}`; use letters, digits, `_`, `-` and `.`"));
    }
    if segment.chars().all(|c| c.is_ascii_digit()) {
        return Err(format!("`{segment}` is only digits, which reads as a version number"));
    }
    if RESERVED_SEGMENTS.contains(&segment) {
        return Err(format!("`{segment}` is reserved by the API"));
    }
    Ok(())
}

impl fmt::Display for ModulePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl TryFrom<String> for ModulePath {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<ModulePath> for String {
    fn from(p: ModulePath) -> String {
        p.0
    }
}

/// A reference to a module: floating (latest) or pinned to a version.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct ModuleRef {
    pub path: ModulePath,
    pub version: Option<u32>,
}

impl ModuleRef {
    pub fn parse(raw: &str) -> Result<Self, String> {
        match raw.rsplit_once('@') {
            Some((path, version)) => {
                let version: u32 = version
                    .parse()
                    .ok()
                    .filter(|v| *v >= 1)
                    .ok_or_else(|| format!("`{version}` after `@` is not a version number (1, 2, …)"))?;
                Ok(Self { path: ModulePath::parse(path)?, version: Some(version) })
            }
            None => Ok(Self { path: ModulePath::parse(raw)?, version: None }),
        }
    }
}

impl fmt::Display for ModuleRef {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.version {
            Some(v) => write!(f, "{}@{v}", self.path),
            None => write!(f, "{}", self.path),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_parse_or_say_why_not() {
        let table: &[(&str, Result<&str, &str>)] = &[
            ("examples/images/busybox", Ok("examples/images/busybox")),
            ("/a/b/", Ok("a/b")),
            ("a_1/b-2/c.3", Ok("a_1/b-2/c.3")),
            ("", Err("empty")),
            ("a//b", Err("empty segment")),
            ("a/b c", Err("contains ` `")),
            ("a/-b", Err("must start")),
            ("a/42", Err("only digits")),
            ("a/versions", Err("reserved")),
        ];
        for (raw, want) in table {
            match (ModulePath::parse(raw), want) {
                (Ok(p), Ok(w)) => assert_eq!(p.as_str(), *w, "{raw}"),
                (Err(e), Err(w)) => assert!(e.contains(w), "{raw}: {e} should mention {w}"),
                (got, want) => panic!("{raw}: got {got:?}, want {want:?}"),
            }
        }
    }

    #[test]
    fn parent_ancestors_and_containment() {
        let p = ModulePath::parse("a/b/c").unwrap();
        assert_eq!(p.parent().unwrap().as_str(), "a/b");
        assert_eq!(p.name(), "c");
        let anc: Vec<_> = p.ancestors().iter().map(|a| a.to_string()).collect();
        assert_eq!(anc, ["a", "a/b"]);
        assert!(p.is_within(&ModulePath::parse("a/b").unwrap()));
        assert!(!ModulePath::parse("a/bc").unwrap().is_within(&ModulePath::parse("a/b").unwrap()));
        assert_eq!(ModulePath::parse("a").unwrap().parent(), None);
    }

    #[test]
    fn references_float_or_pin() {
        let r = ModuleRef::parse("examples/images/busybox@3").unwrap();
        assert_eq!((r.path.as_str(), r.version), ("examples/images/busybox", Some(3)));
        assert_eq!(ModuleRef::parse("a/b").unwrap().version, None);
        assert!(ModuleRef::parse("a/b@0").is_err());
        assert!(ModuleRef::parse("a/b@x").is_err());
        assert_eq!(ModuleRef::parse("a/b@7").unwrap().to_string(), "a/b@7");
    }
}
