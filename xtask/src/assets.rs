//! Browser assets that are not ours: the terminal emulator of the run page, xterm.js and its
//! fit add-on, installed from their npm packages (pinned versions, into a cache directory;
//! npm itself from Debian if missing) and copied into the site's `/pkg` with our own glue
//! (`public/terminal.js`). Nothing is loaded from a CDN.

use std::path::Path;
use std::process::Command;

use crate::{ensure_debian_packages, output, run, step, Result};

/// The npm packages and the files of each that the page loads, as (package file, name in /pkg).
const XTERM: &str = "@xterm/xterm@5.5.0";
const XTERM_FIT: &str = "@xterm/addon-fit@0.10.0";
const FILES: [(&str, &str); 3] = [
    ("@xterm/xterm/lib/xterm.js", "xterm.js"),
    ("@xterm/xterm/css/xterm.css", "xterm.css"),
    ("@xterm/addon-fit/lib/addon-fit.js", "xterm-addon-fit.js"),
];

/// Puts the terminal's files and everything in `public/` into `pkg`.
pub fn bundle(root: &Path, cache: &Path, pkg: &Path) -> Result {
    let npm_dir = cache.join("npm");
    let modules = npm_dir.join("node_modules");
    let installed = FILES.iter().all(|(f, _)| modules.join(f).is_file())
        && std::fs::read_to_string(npm_dir.join("installed")).is_ok_and(|v| v.trim() == format!("{XTERM} {XTERM_FIT}"));
    if !installed {
        if output(Command::new("npm").arg("--version")).is_none() {
            ensure_debian_packages(&["npm"])?;
        }
        step(&format!("npm install {XTERM} {XTERM_FIT} (the terminal emulator, once)"), || {
            std::fs::create_dir_all(&npm_dir).map_err(|e| format!("{}: {e}", npm_dir.display()))?;
            run(Command::new("npm")
                .args(["install", "--no-audit", "--no-fund", "--no-save", "--loglevel", "error", "--prefix"])
                .arg(&npm_dir)
                .args([XTERM, XTERM_FIT]))?;
            std::fs::write(npm_dir.join("installed"), format!("{XTERM} {XTERM_FIT}\n")).map_err(|e| e.to_string())
        })?;
    }
    for (from, to) in FILES {
        std::fs::copy(modules.join(from), pkg.join(to)).map_err(|e| format!("copying {from}: {e}"))?;
    }
    for entry in std::fs::read_dir(root.join("public")).map_err(|e| format!("public/: {e}"))?.flatten() {
        if entry.path().is_file() {
            std::fs::copy(entry.path(), pkg.join(entry.file_name())).map_err(|e| format!("copying {}: {e}", entry.path().display()))?;
        }
    }
    Ok(())
}
