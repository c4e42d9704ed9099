//! Processes opened inside a running container (a terminal's shell, a target re-run): a
//! Docker exec, with a TTY for a terminal. A Docker exec outlives the connection that started
//! it, so a terminal's shell writes its pid to a file first; when the terminal closes, the
//! connector sends that shell a hang-up, as closing a real terminal would.

use bollard::exec::{ResizeExecOptions, StartExecResults};
use bollard::models::ExecConfig;
use futures::StreamExt;
use tokio::io::AsyncWriteExt;

use super::{failed, Docker, WORK_DIR};
use crate::connector::{Account, Exec, ExecInput, ExecOutput, ExecSpec};
use crate::Result;

impl Docker {
    pub(super) async fn exec_in(&self, handle: &str, account: &Account, spec: &ExecSpec) -> Result<Exec> {
        let (_, c, id) = self.locate(handle, account)?;
        let pid_file = format!("{WORK_DIR}/.slipstream/exec-{}.pid", uuid::Uuid::new_v4().simple());
        let script = spec.script(WORK_DIR);
        // The shell records its pid, then becomes the command.
        let cmd = vec!["sh".to_string(), "-c".into(), format!("echo $$ > {pid_file}; exec sh -c \"$0\""), script];
        let config = ExecConfig {
            attach_stdin: Some(true),
            attach_stdout: Some(true),
            attach_stderr: Some(true),
            tty: Some(spec.tty.is_some()),
            cmd: Some(cmd),
            ..Default::default()
        };
        let exec_id = c.create_exec(id, config).await.map_err(|e| failed(&format!("opening a process in container {id}"), e))?.id;
        let (mut output_stream, mut stdin) = match c.start_exec(&exec_id, None).await.map_err(|e| failed("starting the process", e))? {
            StartExecResults::Attached { output, input } => (output, input),
            StartExecResults::Detached => return Err(crate::Error::Internal("the engine detached the process".into())),
        };
        if let Some((columns, rows)) = spec.tty {
            let _ = c.resize_exec(&exec_id, ResizeExecOptions { width: columns, height: rows }).await;
        } else {
            let _ = stdin.write_all(&spec.stdin).await;
            let _ = stdin.shutdown().await;
        }
        let (exec, mut input, output) = Exec::channels();
        let tty = spec.tty.is_some();
        let id = id.to_string();
        tokio::spawn(async move {
            let mut input_open = tty;
            loop {
                tokio::select! {
                    m = input.recv(), if input_open => match m {
                        Some(ExecInput::Data(d)) => { let _ = stdin.write_all(&d).await; let _ = stdin.flush().await; }
                        Some(ExecInput::Resize(columns, rows)) => {
                            let _ = c.resize_exec(&exec_id, ResizeExecOptions { width: columns, height: rows }).await;
                        }
                        None => {
                            input_open = false;
                            hang_up(&c, &id, &pid_file).await;
                        }
                    },
                    m = output_stream.next() => match m {
                        Some(Ok(chunk)) => { let _ = output.send(ExecOutput::Data(chunk.into_bytes())).await; }
                        Some(Err(_)) | None => break,
                    },
                }
            }
            let code = c.inspect_exec(&exec_id).await.ok().and_then(|i| i.exit_code).and_then(|c| i32::try_from(c).ok());
            let _ = output.send(ExecOutput::Exit(code)).await;
            if input_open {
                // Ended on its own: its pid file goes (the closing branch never ran).
                let _ = run_quiet(&c, &id, vec!["rm".into(), "-f".into(), pid_file]).await;
            }
        });
        Ok(exec)
    }
}

/// SIGHUP to the terminal's shell (its own pid file says which), as closing a terminal does.
async fn hang_up(c: &bollard::Docker, id: &str, pid_file: &str) {
    let line = format!("kill -HUP \"$(cat {pid_file})\" 2>/dev/null; rm -f {pid_file}");
    let _ = run_quiet(c, id, vec!["sh".into(), "-c".into(), line]).await;
}

/// Runs a command in the container, waiting for it, ignoring its output.
async fn run_quiet(c: &bollard::Docker, id: &str, cmd: Vec<String>) -> Result<()> {
    let config = ExecConfig { attach_stdout: Some(true), attach_stderr: Some(true), cmd: Some(cmd), ..Default::default() };
    let exec_id = c.create_exec(id, config).await.map_err(|e| failed("a process in the container", e))?.id;
    if let Ok(StartExecResults::Attached { mut output, .. }) = c.start_exec(&exec_id, None).await {
        while output.next().await.is_some() {}
    }
    Ok(())
}
