//! Secrets out of report bundles: a bundle carries the script output the agent logged
//! (`slipstream-<target>.log`), where a script that printed a secret parameter printed it in
//! clear. Before such a bundle is kept, the server rewrites it: secret values are redacted from
//! every entry's name (the listing) and from those logs, as they are from the output lines it
//! stores. Other files are the scripts' own and kept byte for byte.

use std::io::{BufReader, BufWriter, Read};
use std::path::Path;

use super::masking::redact;

/// Whether an entry of the bundle is output the agent logged (`<instance>/slipstream-*.log`).
fn is_output_log(path: &str) -> bool {
    let name = path.rsplit('/').next().unwrap_or(path);
    name.starts_with("slipstream-") && name.ends_with(".log")
}

/// Writes `src` (a `tar.gz`) to `dst` with `values` redacted; returns `dst`'s size. Fails if
/// `src` is not a gzip-compressed tar archive.
pub(crate) fn redact_bundle(src: &Path, dst: &Path, values: &[String]) -> std::io::Result<u64> {
    let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(BufReader::new(std::fs::File::open(src)?)));
    let out = BufWriter::new(std::fs::File::create(dst)?);
    let mut bundle = tar::Builder::new(flate2::write::GzEncoder::new(out, flate2::Compression::default()));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let mut header = entry.header().clone();
        let path = redact(&entry.path()?.to_string_lossy(), values);
        let link = entry.link_name()?.map(|l| redact(&l.to_string_lossy(), values));
        match link {
            Some(target) => bundle.append_link(&mut header, &path, target)?,
            None if header.entry_type().is_file() && is_output_log(&path) => {
                let mut text = Vec::new();
                entry.read_to_end(&mut text)?;
                let lines: Vec<String> = String::from_utf8_lossy(&text).split('\n').map(|l| redact(l, values)).collect();
                let text = lines.join("\n");
                header.set_size(text.len() as u64);
                bundle.append_data(&mut header, &path, text.as_bytes())?;
            }
            None => bundle.append_data(&mut header, &path, &mut entry)?,
        }
    }
    let file = bundle.into_inner()?.finish()?.into_inner().map_err(|e| e.into_error())?;
    file.sync_all()?;
    Ok(file.metadata()?.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A bundle as the agent makes it, with the given (path, contents).
    fn bundle(dir: &Path, files: &[(&str, &str)]) -> std::path::PathBuf {
        let path = dir.join("in.tgz");
        let gz = flate2::write::GzEncoder::new(std::fs::File::create(&path).unwrap(), flate2::Compression::default());
        let mut tar = tar::Builder::new(gz);
        for (name, text) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(text.len() as u64);
            h.set_mode(0o644);
            tar.append_data(&mut h, name, text.as_bytes()).unwrap();
        }
        tar.into_inner().unwrap().finish().unwrap();
        path
    }

    fn entries(path: &Path) -> Vec<(String, String)> {
        let mut archive = tar::Archive::new(flate2::read::GzDecoder::new(std::fs::File::open(path).unwrap()));
        archive
            .entries()
            .unwrap()
            .map(|e| {
                let mut e = e.unwrap();
                let mut text = String::new();
                e.read_to_string(&mut text).unwrap();
                (e.path().unwrap().to_string_lossy().into_owned(), text)
            })
            .collect()
    }

    #[test]
    fn secrets_leave_the_names_and_the_logged_output_and_the_scripts_files_stay_as_they_are() {
        let dir = crate::testing::temp_dir("bundle");
        let src = bundle(
            &dir,
            &[
                ("db.1/slipstream-execute.log", "connecting with hunter2-horse\nok\n"),
                ("db.1/key-hunter2-horse.txt", "hunter2-horse"),
                ("db.1/result.txt", "all fine"),
            ],
        );
        let dst = dir.join("out.tgz");
        let size = redact_bundle(&src, &dst, &["hunter2-horse".to_string()]).unwrap();
        assert_eq!(size, std::fs::metadata(&dst).unwrap().len());
        assert_eq!(
            entries(&dst),
            [
                ("db.1/slipstream-execute.log".to_string(), "connecting with ********\nok\n".to_string()),
                ("db.1/key-********.txt".to_string(), "hunter2-horse".to_string()),
                ("db.1/result.txt".to_string(), "all fine".to_string()),
            ]
        );
        std::fs::write(&src, b"not a bundle").unwrap();
        assert!(redact_bundle(&src, &dst, &["hunter2-horse".to_string()]).is_err());
    }
}
