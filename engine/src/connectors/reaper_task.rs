//! Reaping the local connector's agents when they exit, without a thread each: a pidfd
//! (Linux 5.3+) becomes readable when its process exits, so one small task per agent waits on
//! the runtime's epoll. A thread per agent (what it was) cost a stack mapped and unmapped per
//! instance; with 1,000 instances that was ~1,000 threads. Where pidfds are missing, a thread.

use std::os::fd::{FromRawFd, OwnedFd};
use std::process::Child;

use tokio::io::unix::AsyncFd;

/// Reaps `child` once it exits (its process group may live on: servers it started). Call from
/// inside the runtime (a blocking task is).
pub(super) fn reap_when_it_exits(mut child: Child) {
    let Some(pidfd) = pidfd_of(&child) else {
        std::thread::spawn(move || drop(child.wait()));
        return;
    };
    let Ok(runtime) = tokio::runtime::Handle::try_current() else {
        std::thread::spawn(move || drop(child.wait()));
        return;
    };
    runtime.spawn(async move {
        // SAFETY: the OwnedFd is moved into the AsyncFd, which alone closes it: it stays
        // open and the same descriptor for the AsyncFd's whole life.
        match unsafe { AsyncFd::register_with_interest(pidfd, tokio::io::Interest::READABLE) } {
            Ok(fd) => {
                let _ = fd.readable().await;
                // It exited: this does not block.
                let _ = child.wait();
            }
            // Not the blocking pool: it is bounded, and this wait may last as long as the run.
            Err(_) => drop(std::thread::spawn(move || child.wait())),
        }
    });
}

fn pidfd_of(child: &Child) -> Option<OwnedFd> {
    let pid = libc::pid_t::try_from(child.id()).ok()?;
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1. The pid is
    // our unreaped child: it cannot be reused by another process before we wait for it.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, libc::O_NONBLOCK) };
    // SAFETY: a descriptor pidfd_open just returned, owned by nothing else.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn an_exited_agent_is_reaped_without_a_thread_of_its_own() {
        let child = std::process::Command::new("/bin/sh").args(["-c", "exit 0"]).spawn().unwrap();
        let pid = child.id() as libc::pid_t;
        super::reap_when_it_exits(child);
        // Reaped: the pid is no longer our child (waitid then fails with ECHILD). WNOWAIT:
        // looking must not reap it itself.
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            // SAFETY: waitid fills the siginfo it is given; WNOHANG | WNOWAIT neither blocks nor reaps.
            let mut info: libc::siginfo_t = unsafe { std::mem::zeroed() };
            let r = unsafe { libc::waitid(libc::P_PID, pid as libc::id_t, &mut info, libc::WEXITED | libc::WNOHANG | libc::WNOWAIT) };
            if r == -1 {
                assert_eq!(std::io::Error::last_os_error().raw_os_error(), Some(libc::ECHILD));
                break;
            }
            assert!(std::time::Instant::now() < deadline, "the exited child was never reaped");
        }
    }
}
