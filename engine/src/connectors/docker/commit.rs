//! Builds: keeping a build container's file system as an image.

use super::{failed, Docker};
use crate::{Error, Result};

impl Docker {
    /// Commits the build container as `image` with the configuration of the image it was made
    /// from (entry point, command, environment, working directory): the agent, its mount and
    /// the build run's environment (its token) are not part of the result.
    pub(super) async fn commit_now(&self, handle: &str, image: &str) -> Result<String> {
        let c = self.client()?;
        let container = self.inspect_raw(handle).await?.ok_or_else(|| Error::Internal(format!("container {handle} is gone")))?;
        let base = container.config.and_then(|c| c.image).unwrap_or_default();
        let base_config =
            c.inspect_image(&base).await.map_err(|e| failed(&format!("inspecting image {base}"), e))?.config.unwrap_or_default();
        let (repo, tag) = image.rsplit_once(':').unwrap_or((image, "latest"));
        let options = bollard::query_parameters::CommitContainerOptions {
            container: Some(handle.to_string()),
            repo: Some(repo.to_string()),
            tag: Some(tag.to_string()),
            comment: Some("built by Slipstream".into()),
            pause: true,
            ..Default::default()
        };
        let config = bollard::models::ContainerConfig {
            env: base_config.env,
            cmd: base_config.cmd,
            entrypoint: Some(base_config.entrypoint.unwrap_or_default()),
            working_dir: base_config.working_dir,
            user: base_config.user,
            labels: base_config.labels,
            ..Default::default()
        };
        let id = c.commit_container(options, config).await.map_err(|e| failed(&format!("committing container {handle}"), e))?;
        Ok(id.id)
    }
}
