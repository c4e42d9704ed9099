//! Processes opened inside a local instance (a terminal's shell, a target re-run): the agent's
//! `enter` command starts them in a session of their own with the instance's confinement, in
//! the instance's directory; a terminal gets a pseudo-terminal whose master the server holds.
//! Closing the terminal hangs up its session.

use std::io::{Read, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::path::Path;
use std::process::{Command, Stdio};

use crate::connector::{Exec, ExecInput, ExecOutput, ExecSpec};
use crate::{Error, Result};

/// A pseudo-terminal of `columns` × `rows`: (master, slave).
fn open_pty(columns: u16, rows: u16) -> std::io::Result<(std::fs::File, std::fs::File)> {
    let (mut master, mut slave) = (-1, -1);
    let size = libc::winsize { ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: openpty writes two descriptors it opened into the given ints.
    let r = unsafe { libc::openpty(&mut master, &mut slave, std::ptr::null_mut(), std::ptr::null(), &size) };
    if r != 0 {
        return Err(std::io::Error::last_os_error());
    }
    // SAFETY: both descriptors were just opened for us and are owned from here on.
    let (m, s) = unsafe { (OwnedFd::from_raw_fd(master), OwnedFd::from_raw_fd(slave)) };
    Ok((m.into(), s.into()))
}

fn resize(master: &std::fs::File, columns: u16, rows: u16) {
    use std::os::fd::AsRawFd;
    let size = libc::winsize { ws_row: rows, ws_col: columns, ws_xpixel: 0, ws_ypixel: 0 };
    // SAFETY: TIOCSWINSZ reads the struct; the descriptor is the terminal's master.
    unsafe { libc::ioctl(master.as_raw_fd(), libc::TIOCSWINSZ, &size) };
}

/// Opens `spec` in the instance working in `dir`, started by `agent enter` with `env`.
pub fn open(agent: &Path, dir: &Path, env: Vec<(String, String)>, spec: &ExecSpec) -> Result<Exec> {
    let io = |e: std::io::Error| Error::Internal(format!("opening a process in instance {}: {e}", spec.instance));
    let mut cmd = Command::new(agent);
    cmd.arg("enter").arg("sh").arg("-c").arg(spec.script(&dir.display().to_string())).current_dir(dir).env_clear().envs(env);
    let (exec, input, output) = Exec::channels();
    match spec.tty {
        Some((columns, rows)) => {
            let (master, slave) = open_pty(columns, rows).map_err(io)?;
            cmd.stdin(slave.try_clone().map_err(io)?).stdout(slave.try_clone().map_err(io)?).stderr(slave);
            let mut child = cmd.spawn().map_err(io)?;
            // The command's session: `enter` made it the leader of its own.
            let session = child.id() as i32;
            let mut reader = master.try_clone().map_err(io)?;
            let out = output.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 8192];
                // EIO once every process of the terminal closed it.
                while let Ok(n @ 1..) = reader.read(&mut buf) {
                    if out.blocking_send(ExecOutput::Data(bytes::Bytes::copy_from_slice(&buf[..n]))).is_err() {
                        break;
                    }
                }
                let code = child.wait().ok().and_then(|s| s.code());
                let _ = out.blocking_send(ExecOutput::Exit(code));
            });
            std::thread::spawn(move || write_terminal(master, input, session));
        }
        None => {
            cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
            let mut child = cmd.spawn().map_err(io)?;
            let mut stdin = child.stdin.take().expect("piped");
            let data = spec.stdin.clone();
            std::thread::spawn(move || {
                let _ = stdin.write_all(&data);
            });
            let pipes: Vec<Box<dyn Read + Send>> =
                vec![Box::new(child.stdout.take().expect("piped")), Box::new(child.stderr.take().expect("piped"))];
            let readers: Vec<_> = pipes
                .into_iter()
                .map(|mut pipe| {
                    let out = output.clone();
                    std::thread::spawn(move || {
                        let mut buf = [0u8; 8192];
                        while let Ok(n @ 1..) = pipe.read(&mut buf) {
                            let _ = out.blocking_send(ExecOutput::Data(bytes::Bytes::copy_from_slice(&buf[..n])));
                        }
                    })
                })
                .collect();
            std::thread::spawn(move || {
                readers.into_iter().for_each(|r| drop(r.join()));
                let code = child.wait().ok().and_then(|s| s.code());
                let _ = output.blocking_send(ExecOutput::Exit(code));
            });
            drop(input);
        }
    }
    Ok(exec)
}

/// Feeds the terminal until its input is dropped, then hangs up its session.
fn write_terminal(mut master: std::fs::File, mut input: tokio::sync::mpsc::Receiver<ExecInput>, session: i32) {
    while let Some(m) = input.blocking_recv() {
        match m {
            ExecInput::Data(d) => {
                if master.write_all(&d).is_err() {
                    return;
                }
            }
            ExecInput::Resize(columns, rows) => resize(&master, columns, rows),
        }
    }
    // SAFETY: signals the terminal's own session (its leader's group), nothing else.
    unsafe { libc::kill(-session, libc::SIGHUP) };
}
