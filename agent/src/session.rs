//! What `slipstream-agent run` does before anything else: become the leader of a new session
//! (every process of the instance stays in it, so the connector can stop them all), and, when
//! the connector says so, confine itself (see [`model::confine`]): limits, then no
//! supplementary groups, the group, the user — the order that leaves no privilege behind.
//! If the confinement cannot be applied the agent must not go on as it is.

use model::confine::{ConfineSpec, Limit, CONFINE_ENV};

pub fn enter() -> Result<(), String> {
    // SAFETY: setsid has no memory effects; it fails harmlessly if already a session leader.
    unsafe { libc::setsid() };
    let Ok(text) = std::env::var(CONFINE_ENV) else { return Ok(()) };
    // Scripts need not see it.
    std::env::remove_var(CONFINE_ENV);
    let spec = ConfineSpec::parse(&text).map_err(|e| format!("{CONFINE_ENV}: {e}"))?;
    apply(&spec).map_err(|e| format!("cannot confine this instance (uid {}, gid {}): {e}", spec.uid, spec.gid))
}

fn apply(spec: &ConfineSpec) -> std::io::Result<()> {
    let check = |r: libc::c_int| if r == 0 { Ok(()) } else { Err(std::io::Error::last_os_error()) };
    for (limit, value) in &spec.limits {
        let resource = match limit {
            Limit::AddressSpace => libc::RLIMIT_AS,
            Limit::Processes => libc::RLIMIT_NPROC,
            Limit::Files => libc::RLIMIT_NOFILE,
        };
        let l = libc::rlimit { rlim_cur: *value, rlim_max: *value };
        // SAFETY: setrlimit reads the struct it is given.
        check(unsafe { libc::setrlimit(resource, &l) })?;
    }
    // SAFETY: setgroups with no groups, then setgid and setuid; each only changes this process.
    check(unsafe { libc::setgroups(0, std::ptr::null()) })?;
    check(unsafe { libc::setgid(spec.gid) })?;
    check(unsafe { libc::setuid(spec.uid) })?;
    // SAFETY: getuid/getgid only read.
    if unsafe { (libc::getuid(), libc::getgid()) } != (spec.uid, spec.gid) {
        return Err(std::io::Error::other("the user did not change"));
    }
    Ok(())
}

/// `slipstream-agent enter CMD [ARGS…]`: runs a command in the instance as its processes run —
/// a session of its own (whose controlling terminal is stdin, when that is a terminal) and the
/// instance's confinement. The local connector opens terminals and re-runs targets with it.
pub fn enter_and_exec(args: &[String]) -> u8 {
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: slipstream-agent enter CMD [ARGS…]");
        return crate::client::EXIT_USAGE;
    };
    if let Err(e) = enter() {
        eprintln!("slipstream-agent: {e}");
        return crate::client::EXIT_SECURITY;
    }
    // SAFETY: isatty and ioctl(TIOCSCTTY) act on this process's own stdin.
    unsafe {
        if libc::isatty(0) == 1 {
            libc::ioctl(0, libc::TIOCSCTTY, 0);
        }
    }
    use std::os::unix::process::CommandExt;
    let e = std::process::Command::new(program).args(rest).exec();
    eprintln!("slipstream-agent: cannot run {program}: {e}");
    crate::client::EXIT_USAGE
}
