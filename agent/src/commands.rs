//! The `ss-*` commands, with the options and exit codes of the original system:
//! 0 ok (`--noblock` on an unset key: an empty line, as the original did), 8 run aborted, 9 timeout; 3 unknown key or bad value,
//! 4 network, 5 server, 6 not allowed, 7 usage. Each failure prints one line naming the key.

use std::time::{Duration, Instant};

use model::ParamKey;

use crate::client::{encode, Client, Failure, EXIT_TIMEOUT, EXIT_USAGE, EXIT_VALUE};

/// Long polls are at most this long; `ss-get` loops until its own deadline.
const POLL: f64 = 50.0;

fn client() -> Result<Client, u8> {
    Client::from_env().map_err(|e| {
        eprintln!("{e}");
        EXIT_USAGE
    })
}

fn qualify(c: &Client, raw: &str) -> Result<ParamKey, u8> {
    let (node, index) = c.node_index();
    ParamKey::parse_relative(raw, &node, index).map_err(|e| {
        eprintln!("{e}");
        EXIT_VALUE
    })
}

fn fail(what: &str, key: &str, f: Failure) -> u8 {
    eprintln!("{what} `{key}`: {}", f.message());
    f.exit_code()
}

/// Splits `--flag`, `--opt value` and positional arguments.
struct Args {
    flags: Vec<String>,
    options: Vec<(String, String)>,
    positional: Vec<String>,
}

fn parse(args: &[String], with_value: &[&str]) -> Result<Args, u8> {
    let mut out = Args { flags: vec![], options: vec![], positional: vec![] };
    let mut it = args.iter();
    while let Some(a) = it.next() {
        if a == "--" {
            out.positional.extend(it.by_ref().cloned());
        } else if with_value.contains(&a.as_str()) {
            let v = it.next().ok_or_else(|| {
                eprintln!("{a} needs a value");
                EXIT_USAGE
            })?;
            out.options.push((a.clone(), v.clone()));
        } else if let Some((k, v)) = a.split_once('=').filter(|(k, _)| with_value.contains(k)) {
            out.options.push((k.to_string(), v.to_string()));
        } else if a.starts_with("--") || (a.starts_with('-') && a.len() == 2) {
            out.flags.push(a.clone());
        } else {
            out.positional.push(a.clone());
        }
    }
    Ok(out)
}

impl Args {
    fn option(&self, names: &[&str]) -> Option<&str> {
        self.options.iter().rev().find(|(k, _)| names.contains(&k.as_str())).map(|(_, v)| v.as_str())
    }
    fn flag(&self, name: &str) -> bool {
        self.flags.iter().any(|f| f == name)
    }
}

fn run_code(f: impl FnOnce() -> Result<u8, u8>) -> u8 {
    f().unwrap_or_else(|code| code)
}

/// Reads a key, blocking while it is unset: `Ok(None)` when `--noblock` found it unset.
fn read(c: &Client, key: &ParamKey, timeout: Option<f64>, noblock: bool, ignore_abort: bool) -> Result<Option<String>, (Failure, bool)> {
    let ia = if ignore_abort { "&ignoreabort=true" } else { "" };
    let path = format!("/params/{}", encode(&key.to_string()));
    if noblock {
        return match c.get(&format!("{path}?wait=0{ia}"), Duration::from_secs(5)) {
            Ok(v) => Ok(Some(v)),
            Err(Failure::Status(408, _)) => Ok(None),
            Err(f) => Err((f, false)),
        };
    }
    // A timeout too long for a clock (`inf`, `1e30`) waits as long as no timeout does.
    let deadline = timeout.and_then(|t| Duration::try_from_secs_f64(t).ok()).and_then(|d| Instant::now().checked_add(d));
    loop {
        let wait = match deadline {
            Some(d) => d.saturating_duration_since(Instant::now()).as_secs_f64().min(POLL),
            None => POLL,
        };
        match c.get(&format!("{path}?wait={wait:.3}{ia}"), Duration::from_secs_f64(wait)) {
            Ok(v) => return Ok(Some(v)),
            Err(Failure::Status(408, m)) => {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    return Err((Failure::Status(408, m), true));
                }
            }
            Err(f) => return Err((f, false)),
        }
    }
}

/// `--timeout S`: seconds (default 60); 0 waits forever; negative or not a number is a usage
/// error (exit 7).
fn timeout_option(a: &Args) -> Result<Option<f64>, u8> {
    match a.option(&["--timeout", "-t"]) {
        None => Ok(Some(60.0)),
        Some(t) => match t.parse::<f64>() {
            Ok(0.0) => Ok(None),
            Ok(s) if s > 0.0 => Ok(Some(s)),
            _ => {
                eprintln!("--timeout `{t}` is not a number of seconds (0 waits forever)");
                Err(EXIT_USAGE)
            }
        },
    }
}

/// `ss-get [--timeout S] [--noblock] [--ignore-abort] key` (default timeout 60 s; 0 = forever).
pub fn get(args: &[String]) -> u8 {
    run_code(|| {
        let a = parse(args, &["--timeout", "-t"])?;
        let [raw] = a.positional.as_slice() else {
            eprintln!("usage: ss-get [--timeout S] [--noblock] [--ignore-abort] key");
            return Err(EXIT_USAGE);
        };
        let timeout = timeout_option(&a)?;
        let c = client()?;
        let key = qualify(&c, raw)?;
        match read(&c, &key, timeout, a.flag("--noblock"), a.flag("--ignore-abort")) {
            Ok(Some(v)) => {
                println!("{v}");
                Ok(0)
            }
            // The original printed an empty value and exited 0; scripts written for it test
            // the text (`[ -z "$v" ]`), so an unset key is not an error here either.
            Ok(None) => {
                println!();
                Ok(0)
            }
            Err((_, true)) => {
                eprintln!("Exceeded timeout limit of {} waiting for key '{key}' to be set", timeout.unwrap_or(0.0));
                Err(EXIT_TIMEOUT)
            }
            Err((f, false)) => Err(fail("ss-get", &key.to_string(), f)),
        }
    })
}

/// Removes ANSI escape sequences (colours from tools' output).
fn strip_ansi(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            if chars.peek() == Some(&'[') {
                chars.next();
                for d in chars.by_ref() {
                    if d.is_ascii_alphabetic() {
                        break;
                    }
                }
            }
            continue;
        }
        out.push(c);
    }
    out
}

pub(crate) fn write(c: &Client, key: &ParamKey, value: &str, ignore_abort: bool) -> Result<(), Failure> {
    let ia = if ignore_abort { "?ignoreabort=true" } else { "" };
    c.call("PUT", &format!("/params/{}{ia}", encode(&key.to_string())), Some(strip_ansi(value).as_bytes()), Duration::from_secs(30))
        .map(|_| ())
}

/// `ss-set [--ignore-abort] key value`.
pub fn set(args: &[String]) -> u8 {
    run_code(|| {
        let a = parse(args, &[])?;
        let [raw, value] = a.positional.as_slice() else {
            eprintln!("usage: ss-set [--ignore-abort] key value");
            return Err(EXIT_USAGE);
        };
        let c = client()?;
        let key = qualify(&c, raw)?;
        write(&c, &key, value, a.flag("--ignore-abort")).map_err(|f| fail("ss-set", &key.to_string(), f))?;
        Ok(0)
    })
}

/// `ss-display message` = `ss-set statecustom message`.
pub fn display(args: &[String]) -> u8 {
    run_code(|| {
        let message = args.join(" ");
        let c = client()?;
        let key = qualify(&c, "statecustom")?;
        write(&c, &key, &message, false).map_err(|f| fail("ss-display", &key.to_string(), f))?;
        Ok(0)
    })
}

/// `ss-abort [--cancel] [reason]`: raises the run's abort flag (or clears it).
pub fn abort(args: &[String]) -> u8 {
    run_code(|| {
        let a = parse(args, &[])?;
        let c = client()?;
        if a.flag("--cancel") {
            c.call("DELETE", &format!("/abort?source={}", encode(&c.instance)), None, Duration::from_secs(30))
                .map_err(|f| fail("ss-abort --cancel on", "ss:abort", f))?;
            return Ok(0);
        }
        let reason = if a.positional.is_empty() { "(unspecified)".to_string() } else { a.positional.join(" ") };
        let body = serde_json::json!({"message": reason, "source": c.instance}).to_string();
        c.call("POST", "/abort", Some(body.as_bytes()), Duration::from_secs(30)).map_err(|f| fail("ss-abort on", "ss:abort", f))?;
        Ok(0)
    })
}

/// `ss-random [-s N] [key]`: N (default 12) random letters and digits, printed, optionally set.
pub fn random(args: &[String]) -> u8 {
    run_code(|| {
        let a = parse(args, &["-s", "--size"])?;
        let size: usize = a.option(&["-s", "--size"]).unwrap_or("12").parse().map_err(|_| {
            eprintln!("-s needs a number");
            EXIT_USAGE
        })?;
        let value = random_alnum(size);
        if let Some(raw) = a.positional.first() {
            let c = client()?;
            let key = qualify(&c, raw)?;
            write(&c, &key, &value, false).map_err(|f| fail("ss-random", &key.to_string(), f))?;
        }
        println!("{value}");
        Ok(0)
    })
}

pub fn random_alnum(n: usize) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    let mut bytes = vec![0u8; n * 2];
    if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    // Rejection sampling keeps the letters uniform.
    let mut out = String::with_capacity(n);
    let mut pool = bytes.into_iter();
    while out.len() < n {
        match pool.next() {
            Some(b) if (b as usize) < 248 => out.push(ALPHABET[b as usize % ALPHABET.len()] as char),
            Some(_) => {}
            None => {
                let mut more = vec![0u8; n];
                if let Ok(mut f) = std::fs::File::open("/dev/urandom") {
                    use std::io::Read;
                    let _ = f.read_exact(&mut more);
                }
                pool = more.into_iter();
            }
        }
    }
    out
}

/// `ss-get-all [--timeout S] [--noblock] node key`: the key of every instance of the node,
/// one value per line in instance order.
pub fn get_all(args: &[String]) -> u8 {
    run_code(|| {
        let a = parse(args, &["--timeout", "-t"])?;
        let [node, name] = a.positional.as_slice() else {
            eprintln!("usage: ss-get-all [--timeout S] [--noblock] node key");
            return Err(EXIT_USAGE);
        };
        let timeout = timeout_option(&a)?;
        let c = client()?;
        let ids_key = qualify(&c, &format!("{node}:ids"))?;
        let ids = match read(&c, &ids_key, None, true, false) {
            Ok(Some(v)) => v,
            Ok(None) => String::new(),
            Err((f, _)) => return Err(fail("ss-get-all", &ids_key.to_string(), f)),
        };
        for id in ids.split(',').filter(|s| !s.is_empty()) {
            let key = qualify(&c, &format!("{node}.{id}:{name}"))?;
            match read(&c, &key, timeout, a.flag("--noblock"), false) {
                Ok(Some(v)) => println!("{v}"),
                Ok(None) => println!(),
                Err((_, true)) => {
                    eprintln!("Exceeded timeout limit of {} waiting for key '{key}' to be set", timeout.unwrap_or(0.0));
                    return Err(EXIT_TIMEOUT);
                }
                Err((f, false)) => return Err(fail("ss-get-all", &key.to_string(), f)),
            }
        }
        Ok(0)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_flags_and_positionals_are_told_apart() {
        let args: Vec<String> = ["--timeout", "2", "--noblock", "web:port"].iter().map(|s| s.to_string()).collect();
        let a = parse(&args, &["--timeout"]).unwrap();
        assert_eq!(a.option(&["--timeout"]), Some("2"));
        assert!(a.flag("--noblock"));
        assert_eq!(a.positional, ["web:port"]);
        let a = parse(&["--".into(), "-x".into()], &[]).unwrap();
        assert_eq!(a.positional, ["-x"]);
    }

    #[test]
    fn ansi_colours_are_stripped() {
        assert_eq!(strip_ansi("\u{1b}[31mred\u{1b}[0m text"), "red text");
    }

    #[test]
    fn random_values_are_alphanumeric() {
        let v = random_alnum(40);
        assert_eq!(v.len(), 40);
        assert!(v.chars().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(v, random_alnum(40));
    }
}
