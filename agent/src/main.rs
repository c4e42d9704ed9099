//! The node agent. It arrives with the run engine (the next issue); until then it only says so,
//! so that nobody mistakes it for a working `ss-get`.

fn main() {
    eprintln!("slipstream-agent: the node agent is not part of this build yet (it comes with the run engine)");
    std::process::exit(2);
}
