//! The client environment by hand: `slipstream.setup` in the instance's directory, written
//! when the agent starts. `source slipstream.setup` in a shell on the instance gives it what a
//! target script has — the run, the instance, the server, the run token, the agent's commands
//! on `PATH`, the report directory — and goes to the instance's directory, so `ss-get`,
//! `ss-set`, `ss-abort --cancel` and `ss-display` work exactly as inside a target. The file
//! holds the run token: only the instance's user may read it (0600).
//!
//! The scripts of every target are kept in `.slipstream/scripts/` (one file per module of the
//! image chain and target, `<module>__<target>`), so they can be run by hand too.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;

pub const FILE: &str = "slipstream.setup";

/// The variables of the agent's environment a target sees, in the order they are written.
fn exported() -> Vec<(String, String)> {
    let mut vars: Vec<(String, String)> = std::env::vars()
        .filter(|(k, _)| k.starts_with("SLIPSTREAM_") && k != model::confine::CONFINE_ENV && k != "SLIPSTREAM_RETRY_SECONDS")
        .collect();
    vars.sort();
    if let Ok(path) = std::env::var("PATH") {
        vars.push(("PATH".into(), path));
    }
    vars
}

fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// The text of the file for an instance working in `dir` with its reports in `report_dir`.
pub fn text(dir: &Path, report_dir: &Path, vars: &[(String, String)]) -> String {
    let mut out = String::from("# Slipstream client environment: `source slipstream.setup` (or `. ./slipstream.setup`) in a shell on\n# this instance, then ss-get, ss-set, ss-abort, ss-display work as in a target script.\n");
    for (k, v) in vars {
        out.push_str(&format!("export {k}={}\n", quote(v)));
    }
    out.push_str(&format!("export SLIPSTREAM_REPORT_DIR={}\n", quote(&report_dir.display().to_string())));
    out.push_str(&format!("cd {}\n", quote(&dir.display().to_string())));
    out
}

/// Writes `slipstream.setup` into `dir` (0600).
pub fn write(dir: &Path, report_dir: &Path) -> Result<(), String> {
    let path = dir.join(FILE);
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .write(true)
        .truncate(true)
        .mode(0o600)
        .open(&path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    f.write_all(text(dir, report_dir, &exported()).as_bytes()).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_file_exports_each_variable_quoted_and_goes_to_the_instance() {
        let vars = vec![("SLIPSTREAM_DIID".to_string(), "r1".to_string()), ("PATH".to_string(), "/opt/x bin:/bin".to_string())];
        let t = super::text(std::path::Path::new("/w/it's"), std::path::Path::new("/w/reports/a.1"), &vars);
        assert!(t.contains("export SLIPSTREAM_DIID='r1'\n"), "{t}");
        assert!(t.contains("export PATH='/opt/x bin:/bin'\n"), "{t}");
        assert!(t.contains("export SLIPSTREAM_REPORT_DIR='/w/reports/a.1'\n"), "{t}");
        assert!(t.ends_with("cd '/w/it'\\''s'\n"), "{t}");
    }
}
