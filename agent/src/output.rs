//! A script's output, read on the agent's own thread: both pipes at once with poll(2), cut into
//! lines as bytes (output that is not UTF-8 is kept, with U+FFFD where it does not decode; a
//! trailing `\r` is dropped), to the end of both, so the script never blocks on a full pipe.
//! One thread for both pipes instead of one reader thread each: a run of 1,000 short scripts
//! started 2,000 threads for that alone.

use std::fs::File;
use std::io::Read;
use std::os::fd::AsRawFd;
use std::time::Instant;

/// One pipe being read: its stream's name, and what came after its last full line.
struct Pipe {
    stream: &'static str,
    file: File,
    pending: Vec<u8>,
    /// How much of `pending` is known to hold no newline.
    scanned: usize,
}

/// Reads every pipe to its end, calling `line` for each line (and for what follows the last
/// newline, if anything). If `at` is given and a pipe is still open then, `at_time` is
/// called once at that instant.
pub fn drain(
    pipes: Vec<(&'static str, File)>,
    mut line: impl FnMut(&'static str, String),
    mut at: Option<Instant>,
    mut at_time: impl FnMut(),
) {
    let mut open: Vec<Pipe> = pipes.into_iter().map(|(stream, file)| Pipe { stream, file, pending: Vec::new(), scanned: 0 }).collect();
    let mut buf = vec![0u8; 64 * 1024];
    while !open.is_empty() {
        let timeout = match at {
            Some(t) => t.saturating_duration_since(Instant::now()).as_millis().min(i32::MAX as u128) as i32,
            None => -1,
        };
        let mut fds: Vec<libc::pollfd> =
            open.iter().map(|p| libc::pollfd { fd: p.file.as_raw_fd(), events: libc::POLLIN, revents: 0 }).collect();
        // SAFETY: `fds` is a live array of `fds.len()` pollfd structs.
        let ready = unsafe { libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout) };
        if ready == 0 {
            at = None;
            at_time();
            continue;
        }
        // A failed poll (EINTR) is asked again; any other failure reads every pipe as if ready
        // (a blocking read then waits on that pipe alone, which still drains it).
        if ready < 0 && std::io::Error::last_os_error().kind() == std::io::ErrorKind::Interrupted {
            continue;
        }
        let mut closed = Vec::new();
        for (i, fd) in fds.iter().enumerate() {
            if ready > 0 && fd.revents == 0 {
                continue;
            }
            let p = &mut open[i];
            match p.file.read(&mut buf) {
                Ok(0) => {
                    if !p.pending.is_empty() {
                        line(p.stream, text_of(&p.pending));
                    }
                    closed.push(i);
                }
                Ok(n) => {
                    p.pending.extend_from_slice(&buf[..n]);
                    while let Some(newline) = p.pending[p.scanned..].iter().position(|b| *b == b'\n') {
                        let end = p.scanned + newline;
                        line(p.stream, text_of(&p.pending[..end]));
                        p.pending.drain(..=end);
                        p.scanned = 0;
                    }
                    p.scanned = p.pending.len();
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(_) => closed.push(i),
            }
        }
        for i in closed.into_iter().rev() {
            open.remove(i);
        }
    }
}

fn text_of(raw: &[u8]) -> String {
    String::from_utf8_lossy(raw.strip_suffix(b"\r").unwrap_or(raw)).into_owned()
}

#[cfg(test)]
mod tests {
    use std::time::{Duration, Instant};

    /// The lines of both pipes after `script` ran in `sh -c`, and whether `at_time` was called.
    fn lines_of(script: &str, at: Option<Duration>) -> (Vec<(&'static str, String)>, bool) {
        let mut child = std::process::Command::new("sh")
            .arg("-c")
            .arg(script)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = std::fs::File::from(std::os::fd::OwnedFd::from(child.stdout.take().unwrap()));
        let err = std::fs::File::from(std::os::fd::OwnedFd::from(child.stderr.take().unwrap()));
        let (mut lines, mut called) = (Vec::new(), false);
        super::drain(vec![("stdout", out), ("stderr", err)], |s, l| lines.push((s, l)), at.map(|d| Instant::now() + d), || called = true);
        child.wait().unwrap();
        (lines, called)
    }

    #[test]
    fn lines_of_both_pipes_are_cut_as_bytes() {
        let (lines, called) = lines_of(r"printf 'a\r\nb\n\nc'; printf 'x\377y\n' >&2", None);
        let out: Vec<&str> = lines.iter().filter(|(s, _)| *s == "stdout").map(|(_, l)| l.as_str()).collect();
        let err: Vec<&str> = lines.iter().filter(|(s, _)| *s == "stderr").map(|(_, l)| l.as_str()).collect();
        assert_eq!(out, ["a", "b", "", "c"], "a trailing \\r dropped, an empty line kept, the last piece kept");
        assert_eq!(err, ["x\u{FFFD}y"]);
        assert!(!called);
    }

    #[test]
    fn a_long_line_in_many_reads_and_many_lines_are_whole() {
        let (lines, _) = lines_of("head -c 300000 /dev/zero | tr '\\0' a; echo; seq 1 20000", None);
        assert_eq!(lines[0].1.len(), 300_000);
        assert_eq!(lines.len(), 20_001);
        assert_eq!(lines[20_000].1, "20000");
    }

    #[test]
    fn the_instant_is_reported_once_while_the_script_runs() {
        let (lines, called) = lines_of("echo start; sleep 0.3; echo end", Some(Duration::from_millis(50)));
        assert!(called);
        assert_eq!(lines.iter().map(|(_, l)| l.as_str()).collect::<Vec<_>>(), ["start", "end"]);
        let (_, called) = lines_of("true", Some(Duration::from_secs(5)));
        assert!(!called, "the pipes closed before the instant");
    }
}
