//! Downloading a run's report bundles and unpacking each into `DIR/<instance>/` (the archive
//! library refuses entries that would land outside it).

use std::path::Path;

use model::run::ReportFile;
use reqwest::Method;

use super::http::{Client, Failure, Result};

/// Returns how many bundles were unpacked.
pub async fn download(c: &Client, run: &str, dir: &Path) -> Result<usize> {
    let files: Vec<ReportFile> = c.get(&format!("/runs/{run}/reports")).await?;
    for f in &files {
        let bytes = c.bytes(c.request(Method::GET, &format!("/runs/{run}/reports/{}/{}", f.instance, f.file))).await?;
        let into = dir.join(&f.instance);
        let io = |e: std::io::Error| Failure::usage(format!("unpacking {} into {}: {e}", f.file, into.display()));
        std::fs::create_dir_all(&into).map_err(io)?;
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(&bytes[..]));
        for entry in archive.entries().map_err(io)? {
            entry.map_err(io)?.unpack_in(&into).map_err(io)?;
        }
    }
    Ok(files.len())
}
