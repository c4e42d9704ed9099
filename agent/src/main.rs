//! The node agent: one static binary installed on every instance under several names
//! (multi-call by argv[0], or `slipstream-agent <command>`):
//!
//! - `ss-get`, `ss-set`, `ss-abort`, `ss-display`, `ss-random`, `ss-get-all`: the commands
//!   scripts written for the original system call (see [`commands`]);
//! - `slipstream-agent run`: the executor that takes the instance through the run's lifecycle
//!   (see [`executor`]); it writes `slipstream.setup`, the client environment by hand (see
//!   [`setup`]);
//! - `slipstream-agent rerun TARGET`: runs one target again with the scripts given on stdin;
//! - `slipstream-agent enter CMD…`: runs a command in the instance's session and confinement.
//!
//! Configuration comes from the environment the connector sets: `SLIPSTREAM_SERVICEURL`,
//! `SLIPSTREAM_DIID` (run id), `SLIPSTREAM_NODE_INSTANCE_NAME`, `SLIPSTREAM_RUN_TOKEN`.
//!
//! # Layout
//! - [`client`]: HTTP calls with retries and backoff, and the exit codes of failures
//! - [`commands`]: the `ss-*` commands
//! - [`executor`]: the lifecycle loop, target scripts, logs, reports
//! - [`output`]: a script's output, both pipes read on one thread
//! - [`pack`]: the gzip stream of a report bundle (stored while small)
//! - [`session`]: a session of its own and, for a root server's local instances, confinement
//! - [`setup`]: `slipstream.setup` and where the scripts are kept

mod client;
mod commands;
mod executor;
mod output;
mod pack;
mod session;
mod setup;

use std::process::ExitCode;

fn main() -> ExitCode {
    let mut args: Vec<String> = std::env::args().collect();
    let argv0 = args.first().cloned().unwrap_or_default();
    let name = std::path::Path::new(&argv0).file_name().and_then(|n| n.to_str()).unwrap_or("").to_string();
    let command = if name.starts_with("ss-") {
        args.remove(0);
        name
    } else {
        args.remove(0);
        if args.is_empty() {
            eprintln!("usage: slipstream-agent run | rerun TARGET | enter CMD… | ss-get | ss-set | ss-abort | ss-display | ss-random | ss-get-all [ARGS]");
            return ExitCode::from(client::EXIT_USAGE);
        }
        args.remove(0)
    };
    let code = match command.as_str() {
        "run" => executor::run(),
        "rerun" => executor::rerun(&args),
        "enter" => session::enter_and_exec(&args),
        "ss-get" => commands::get(&args),
        "ss-set" => commands::set(&args),
        "ss-abort" => commands::abort(&args),
        "ss-display" => commands::display(&args),
        "ss-random" => commands::random(&args),
        "ss-get-all" => commands::get_all(&args),
        other => {
            eprintln!("slipstream-agent: unknown command `{other}`");
            client::EXIT_USAGE
        }
    };
    ExitCode::from(code)
}
