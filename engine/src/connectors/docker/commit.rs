//! Builds: keeping a build container's file system as an image.

use futures::StreamExt;

use super::{failed, inspect_raw, Docker};
use crate::connector::Account;
use crate::{Error, Result};

impl Docker {
    /// Commits the build container as `image` with the configuration of the image it was made
    /// from (entry point, command, environment, working directory): the agent, its mount and
    /// the build run's environment (its token) are not part of the result. On a connector with
    /// several engines the image is then copied to the others, and its name (the same on
    /// every engine) is what runs use; with one engine, its id.
    pub(super) async fn commit_now(&self, handle: &str, image: &str, account: &Account) -> Result<String> {
        let (at, c, handle) = self.locate(handle, account)?;
        let container = inspect_raw(&c, handle).await?.ok_or_else(|| Error::Internal(format!("container {handle} is gone")))?;
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
        if self.endpoints.len() == 1 {
            return Ok(id.id);
        }
        for to in self.endpoints.iter().filter(|e| e.url != at.url) {
            let target = to.client(&self.name, account)?;
            let exported = c.export_image(image).map(|chunk| chunk.map_err(std::io::Error::other));
            let mut loading = target.import_image_stream(bollard::query_parameters::ImportImageOptions::default(), exported, None);
            while let Some(step) = loading.next().await {
                let step = step.map_err(|e| failed(&format!("copying image {image} from {} to {}", at.url, to.url), e))?;
                if let Some(why) = step.error_detail.and_then(|d| d.message) {
                    return Err(Error::Internal(format!("copying image {image} from {} to {}: {why}", at.url, to.url)));
                }
            }
        }
        Ok(image.to_string())
    }
}
