//! The docs check of `cargo xtask lint`: a clone has only this repository, so every relative
//! link in a Markdown file must resolve to a file inside it, and no tracked file may send its
//! reader to the steering folder next to the checkout (it is not part of a clone).

use std::path::{Component, Path, PathBuf};
use std::process::Command;

use crate::Result;

/// Checks every tracked file; the error lists each problem as `file:line: what`.
pub fn check(root: &Path) -> Result {
    let listed = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(["ls-files", "-z", "--cached", "--others", "--exclude-standard"])
        .output()
        .map_err(|e| format!("git ls-files: {e}"))?;
    if !listed.status.success() {
        return Err("git ls-files failed; the docs check needs a git checkout".into());
    }
    // Spelled in two parts so that this file does not trip its own check.
    let outside = format!("{}/{}", "..", "shared");
    let mut problems = Vec::new();
    for name in listed.stdout.split(|b| *b == 0).filter(|n| !n.is_empty()) {
        let rel = PathBuf::from(String::from_utf8_lossy(name).into_owned());
        let Ok(text) = std::fs::read_to_string(root.join(&rel)) else { continue }; // binary files
        for (i, line) in text.lines().enumerate() {
            if line.contains(&outside) {
                problems.push(format!("{}:{}: points at {outside}, which a clone does not have", rel.display(), i + 1));
            }
        }
        if rel.extension().is_some_and(|e| e == "md") {
            for (line, target) in links(&text) {
                if let Some(why) = broken(root, &rel, &target) {
                    problems.push(format!("{}:{line}: link `{target}` {why}", rel.display()));
                }
            }
        }
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(format!("the docs check found {} problem(s):\n  {}", problems.len(), problems.join("\n  ")))
    }
}

/// `(line, target)` of every inline Markdown link `[text](target)` outside code blocks.
fn links(text: &str) -> Vec<(usize, String)> {
    let mut out = Vec::new();
    let mut in_code = false;
    for (i, line) in text.lines().enumerate() {
        if line.trim_start().starts_with("```") {
            in_code = !in_code;
            continue;
        }
        if in_code {
            continue;
        }
        let mut rest = line;
        while let Some(at) = rest.find("](") {
            let after = &rest[at + 2..];
            let Some(end) = after.find(')') else { break };
            out.push((i + 1, after[..end].trim().to_string()));
            rest = &after[end..];
        }
    }
    out
}

/// Why a link from `file` does not resolve inside the repository, if it does not.
fn broken(root: &Path, file: &Path, target: &str) -> Option<&'static str> {
    if target.starts_with("http://") || target.starts_with("https://") || target.starts_with("mailto:") || target.starts_with('#') {
        return None;
    }
    let path = target.split('#').next().unwrap_or_default();
    if path.is_empty() {
        return None;
    }
    if path.starts_with('/') {
        return Some("is absolute; write it relative to the file");
    }
    let mut resolved = file.parent().map(Path::to_path_buf).unwrap_or_default();
    for c in Path::new(path).components() {
        match c {
            Component::ParentDir => {
                let inside = resolved.pop();
                if !inside {
                    return Some("leaves the repository");
                }
            }
            Component::Normal(p) => resolved.push(p),
            _ => {}
        }
    }
    (!root.join(&resolved).exists()).then_some("names no file in the repository")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn links_outside_code_blocks_are_found() {
        let text = "See [runs](runs.md#abort) and [x](a.md).\n```\n[not](this.md)\n```\n[web](https://example.org)\n";
        let found: Vec<String> = links(text).into_iter().map(|(_, t)| t).collect();
        assert_eq!(found, ["runs.md#abort", "a.md", "https://example.org"]);
    }

    #[test]
    fn links_must_resolve_inside_the_repository() {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let readme = Path::new("README.md");
        assert_eq!(broken(root, readme, "xtask/src/docs.rs"), None);
        assert_eq!(broken(root, readme, "https://example.org/x"), None);
        assert_eq!(broken(root, readme, "#quick-start"), None);
        assert_eq!(broken(root, readme, "nothing-here.md"), Some("names no file in the repository"));
        assert_eq!(broken(root, readme, "../elsewhere.md"), Some("leaves the repository"));
        assert_eq!(broken(root, readme, "/etc/passwd"), Some("is absolute; write it relative to the file"));
        assert_eq!(broken(root, Path::new("xtask/src/docs.rs"), "../Cargo.toml"), None);
    }
}
