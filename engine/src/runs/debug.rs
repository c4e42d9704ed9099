//! Debugging a run's instances while they run (or are kept): a terminal inside an instance,
//! and re-running one target there with the module's **current** scripts — the edit-and-rerun
//! loop. Only the run's owner and administrators may (as for everything about a run); who
//! opened a terminal on which instance, and each re-run with the versions it used, are in the
//! run's events (never what was typed).

use model::run::PlannedScript;
use model::User;
use sqlx::Row;

use super::RunCaller;
use crate::connector::{Exec, ExecSpec};
use crate::{Engine, Error, Result};

/// The targets a user may re-run by hand.
pub const RERUN_TARGETS: [&str; 4] = ["execute", "report", "onvmadd", "onvmremove"];

/// What a re-run did.
#[derive(Clone, Debug, serde::Serialize)]
pub struct Rerun {
    pub instance: String,
    pub target: String,
    /// `module@version` of each script, root image first.
    pub scripts: Vec<String>,
    /// `None`: it ended without one (a signal, or a lost connection).
    pub exit_code: Option<i32>,
}

impl Engine {
    /// The connector, handle and owner's account of a running instance of a live run.
    async fn live_instance(
        &self,
        user: &User,
        run: &str,
        instance: &str,
    ) -> Result<(&dyn crate::connector::Connector, String, crate::connector::Account, String)> {
        let owner = self.authorize_run(&RunCaller::User(Some(user)), run).await?;
        let state = self.run_state(run).await?;
        if state.is_terminal() {
            return Err(Error::Conflict(format!("run `{run}` has ended ({}): its instances are gone", state.as_str())));
        }
        let row = sqlx::query("SELECT connector, handle FROM run_instances WHERE run_id = $1 AND name = $2 AND scale <> 'gone'")
            .bind(run)
            .bind(instance)
            .fetch_optional(&self.db.pool)
            .await?
            .ok_or_else(|| Error::NotFound(format!("run `{run}` has no instance `{instance}`")))?;
        let (connector, handle): (String, String) = (row.try_get("connector")?, row.try_get("handle")?);
        if handle.is_empty() {
            return Err(Error::Conflict(format!("instance {instance} has not started")));
        }
        let c = self.connector(&connector).ok_or_else(|| Error::Unavailable(format!("connector `{connector}` is not configured")))?;
        let account = self.account_for(&owner, &connector).await?;
        Ok((c, handle, account, owner))
    }

    /// Opens a shell on a terminal of `columns` × `rows` inside the instance.
    pub async fn open_terminal(&self, user: &User, run: &str, instance: &str, columns: u16, rows: u16) -> Result<Exec> {
        let (c, handle, account, owner) = self.live_instance(user, run, instance).await?;
        let exec = c.exec(&handle, &account, &ExecSpec::shell(run, instance, columns.max(1), rows.max(1))).await?;
        self.event(run, &owner, "terminal", &format!("Terminal opened on {instance} by {}", user.name)).await?;
        Ok(exec)
    }

    /// The current scripts of `target` for the instance's image, root image first.
    async fn current_scripts(&self, user: &User, run: &str, instance: &str, target: &str) -> Result<Vec<PlannedScript>> {
        if !RERUN_TARGETS.contains(&target) {
            return Err(Error::invalid(
                run,
                "target",
                format!("`{target}` is not a target that can be re-run ({})", RERUN_TARGETS.join(", ")),
            ));
        }
        let plan = self.instance_plan(run, instance).await?;
        let node = self
            .plan_of(run)
            .await?
            .get(&plan.node)
            .cloned()
            .ok_or_else(|| Error::Internal(format!("node `{}` is not planned", plan.node)))?;
        let image = self.resolve_image(Some(user), &node.image).await?;
        let scripts: Vec<PlannedScript> = image
            .targets
            .get(target)
            .map(|s| s.iter().map(|s| PlannedScript { module: s.module.clone(), version: s.version, script: s.script.clone() }).collect())
            .unwrap_or_default();
        if scripts.is_empty() {
            return Err(Error::invalid(&node.image, "target", format!("image `{}` has no `{target}` script", node.image)));
        }
        Ok(scripts)
    }

    /// Runs `target` again on the instance with the current scripts; its output goes to the
    /// run's logs like any target's. Returns once it ended.
    pub async fn rerun_target(&self, user: &User, run: &str, instance: &str, target: &str) -> Result<Rerun> {
        let (c, handle, account, owner) = self.live_instance(user, run, instance).await?;
        let scripts = self.current_scripts(user, run, instance, target).await?;
        let names: Vec<String> = scripts.iter().map(|s| format!("{}@{}", s.module, s.version)).collect();
        let spec = ExecSpec {
            run: run.into(),
            instance: instance.into(),
            command: format!("exec slipstream-agent rerun {target}"),
            stdin: serde_json::to_vec(&scripts)?,
            tty: None,
        };
        let exec = c.exec(&handle, &account, &spec).await?;
        self.event(run, &owner, "rerun", &format!("Re-running {target} on {instance} with {} (by {})", names.join(", "), user.name))
            .await?;
        let (output, exit_code) = exec.finish().await;
        // The agent's own complaints (not the script's output, which went to the logs).
        let said = String::from_utf8_lossy(&output).lines().filter(|l| l.starts_with("slipstream-agent:")).collect::<Vec<_>>().join("; ");
        let ended = match exit_code {
            Some(code) => format!("Re-run of {target} on {instance} exited with {code}"),
            None => format!("Re-run of {target} on {instance} ended without an exit code"),
        };
        let message = if said.is_empty() { ended } else { format!("{ended}: {said}") };
        self.event(run, &owner, "rerun", &message).await?;
        Ok(Rerun { instance: instance.into(), target: target.into(), scripts: names, exit_code })
    }
}
