//! Report bundles: the `tar.gz` an instance uploads when the run sends reports, stored under
//! `<data-dir>/reports/<run>/<instance>/<file>` and listed in the database.

use model::run::ReportFile;
use sqlx::Row;

use crate::{now_ms, Engine, Error, Result};

/// The largest report bundle accepted unless the server says otherwise.
const DEFAULT_REPORT_LIMIT: u64 = 256 << 20;

impl Engine {
    fn report_path(&self, run: &str, instance: &str, file: &str) -> Result<std::path::PathBuf> {
        // Names become path components: no separators, no leading dot, nothing to escape with.
        let ok = |s: &str| {
            !s.is_empty() && s.len() <= 200 && !s.starts_with('.') && s.chars().all(|c| c.is_ascii_alphanumeric() || "._-:".contains(c))
        };
        if !ok(instance) || !ok(file) {
            return Err(Error::invalid("", "file", format!("`{instance}/{file}` is not a report file name")));
        }
        Ok(self.rt.config.data_dir.join("reports").join(run).join(instance).join(file))
    }

    /// Stores a report bundle an agent uploads, as it arrives: written to a file of its own,
    /// refused with `413` once it passes the limit (nothing of it is kept), then renamed into
    /// place — a crash never leaves half a report under the final name.
    pub async fn store_report<S, E>(&self, run: &str, instance: &str, file: &str, mut chunks: S) -> Result<()>
    where
        S: futures::Stream<Item = std::result::Result<bytes::Bytes, E>> + Unpin,
        E: std::fmt::Display,
    {
        use futures::StreamExt;
        use tokio::io::AsyncWriteExt;
        let path = self.report_path(run, instance, file)?;
        self.require_instance(run, instance).await?;
        if let Some(dir) = path.parent() {
            tokio::fs::create_dir_all(dir).await.map_err(|e| Error::Internal(e.to_string()))?;
        }
        let limit = self.rt.config.report_limit.unwrap_or(DEFAULT_REPORT_LIMIT);
        // Two uploads of one name at once each write a file of their own.
        let tmp = path.with_file_name(format!(".{}.{}.part", file, crate::users::random_hex(8)));
        let written = async {
            let mut out = tokio::fs::File::create(&tmp).await.map_err(|e| Error::Internal(e.to_string()))?;
            let mut size: u64 = 0;
            while let Some(chunk) = chunks.next().await {
                let chunk = chunk.map_err(|e| Error::invalid("", "body", format!("the upload broke off: {e}")))?;
                size += chunk.len() as u64;
                if size > limit {
                    return Err(Error::TooLarge(format!(
                        "the report bundle {file} of {instance} is over the limit of {} MiB (the server's --report-limit-mb)",
                        limit >> 20
                    )));
                }
                out.write_all(&chunk).await.map_err(|e| Error::Internal(e.to_string()))?;
            }
            // Flushed to the kernel, not fsynced: like a parameter commit (`synchronous =
            // NORMAL`), a stored report survives a kill of the server, not a power loss — and
            // a run of 1,000 instances does not wait for 1,000 fsyncs.
            out.flush().await.map_err(|e| Error::Internal(e.to_string()))?;
            Ok(size)
        }
        .await;
        let mut size = match written {
            Ok(size) => size,
            Err(e) => {
                let _ = tokio::fs::remove_file(&tmp).await;
                return Err(e);
            }
        };
        // A run with secrets: the bundle is rewritten without them before it is kept.
        let values = self.secret_values(run).await?;
        let tmp = if values.is_empty() {
            tmp
        } else {
            let clean = tmp.with_extension("redacted");
            let (from, to) = (tmp.clone(), clean.clone());
            let redacted = tokio::task::spawn_blocking(move || super::report_masking::redact_bundle(&from, &to, &values))
                .await
                .map_err(|e| Error::Internal(e.to_string()))?;
            let _ = tokio::fs::remove_file(&tmp).await;
            match redacted {
                Ok(n) => size = n,
                Err(e) => {
                    let _ = tokio::fs::remove_file(&clean).await;
                    return Err(Error::invalid("", "body", format!("the report bundle {file} is not a tar.gz archive: {e}")));
                }
            }
            clean
        };
        tokio::fs::rename(&tmp, &path).await.map_err(|e| Error::Internal(e.to_string()))?;
        let op = crate::params::Op::Report { instance: instance.into(), file: file.into(), size: size as i64, at: now_ms() };
        // Sent before the event, so both usually share one commit.
        let listed = self.rt.committer.send(run, op)?;
        let owner = self.run_owner(run).await?;
        self.event(run, &owner, "report", &format!("Report {file} from {instance} ({size} bytes)")).await?;
        listed.committed().await
    }

    pub async fn reports(&self, run: &str) -> Result<Vec<ReportFile>> {
        let rows = sqlx::query("SELECT instance, file, size, at FROM run_reports WHERE run_id = $1 ORDER BY instance, file")
            .bind(run)
            .fetch_all(&self.db.pool)
            .await?;
        rows.iter()
            .map(|r| {
                Ok(ReportFile {
                    instance: r.try_get("instance")?,
                    file: r.try_get("file")?,
                    size: r.try_get("size")?,
                    at: r.try_get("at")?,
                })
            })
            .collect()
    }

    pub async fn read_report(&self, run: &str, instance: &str, file: &str) -> Result<Vec<u8>> {
        let path = self.report_path(run, instance, file)?;
        tokio::fs::read(&path).await.map_err(|_| Error::NotFound(format!("run `{run}` has no report `{instance}/{file}`")))
    }
}
