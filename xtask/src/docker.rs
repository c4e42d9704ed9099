//! The Docker test bed of `cargo xtask test`: Debian's dockerd started with a config of its own
//! (socket, exec-root and pid file under `/tmp/slipstream-docker`, data-root cached under
//! `$HOME/.cache/slipstream/docker` when there is one, addresses from `10.200.x`), and the base
//! images: `slipstream/busybox:latest` (what the examples use) made from Debian's
//! `busybox-static`, and `slipstream/debian:bookworm` made with `debootstrap`, both
//! `docker import`ed (nothing is pulled from a registry). Stopped by its PID; what it leaves on
//! the host (bridges, iptables chains, `ip_forward`) is put back.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::{output, run, step, Result};

/// Where the bed's socket and runtime files live (a short path: sockets have a length limit).
const RUN_DIR: &str = "/tmp/slipstream-docker";
pub const BUSYBOX_IMAGE: &str = "slipstream/busybox:latest";
/// The Podman bed's files, and the address of this host its containers reach the server on.
const PODMAN_DIR: &str = "/tmp/slipstream-podman";
const PODMAN_AGENT_ADDRESS: &str = "10.200.59.1";
/// The bed's dockerd also listens here with TLS, verifying client certificates (a "remote"
/// engine: the server reaches it as it would one on another host).
pub const TLS_ENDPOINT: &str = "tcp://127.0.0.1:23760";
/// A Debian bookworm image made with `debootstrap` from Debian's own packages.
pub const DEBIAN_IMAGE: &str = "slipstream/debian:bookworm";

pub struct DockerBed {
    /// `unix:///tmp/slipstream-docker/docker.sock`.
    pub endpoint: String,
    /// For Podman: the address of this host its containers reach the server on (Podman makes
    /// its bridges only when a container needs one, so the bed puts one on `lo`).
    pub agent_address: Option<String>,
    /// For dockerd: the directory of its TLS files — `ca.pem` (what signed the engine's
    /// certificate), `client.pem` (a user's key and certificate it accepts) and `stranger.pem`
    /// (a key and certificate from another CA, which it refuses).
    pub tls_dir: Option<PathBuf>,
    daemon: Child,
    ip_forward: Option<String>,
    links_before: Vec<String>,
    /// `iptables-save` before dockerd added its chains; restored exactly afterwards.
    iptables_before: Option<String>,
    /// For Podman: its storage. Its container monitors (`conmon`, one per container and per
    /// exec session) detach from the service, and some outlive it and their containers (seen
    /// after a full test run); they are found by this directory in their arguments.
    storage: Option<PathBuf>,
}

fn docker(endpoint: &str) -> Command {
    let mut c = Command::new("docker");
    c.args(["-H", endpoint]);
    c
}

/// The network interfaces of the host, by name.
fn links() -> Vec<String> {
    output(Command::new("ip").args(["-o", "link", "show"]))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| l.split(':').nth(1).map(|n| n.trim().split('@').next().unwrap_or("").to_string()))
        .collect()
}

impl DockerBed {
    pub fn start(cache: Option<&Path>) -> Result<Self> {
        let run_dir = PathBuf::from(RUN_DIR);
        std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        // A daemon a crashed earlier test run left behind, found by its own pid file.
        let pidfile = run_dir.join("dockerd.pid");
        if let Some(pid) = std::fs::read_to_string(&pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            std::thread::sleep(Duration::from_secs(2));
        }
        let data_root = cache.map(|c| c.join("docker")).unwrap_or_else(|| run_dir.join("data"));
        let tls_dir = run_dir.join("tls");
        make_certificates(&tls_dir)?;
        let config = daemon_config(&[
            ("data-root", data_root.display().to_string()),
            ("exec-root", run_dir.join("exec").display().to_string()),
            ("pidfile", pidfile.display().to_string()),
            ("tlscacert", tls_dir.join("ca.pem").display().to_string()),
            ("tlscert", tls_dir.join("server-cert.pem").display().to_string()),
            ("tlskey", tls_dir.join("server-key.pem").display().to_string()),
        ]);
        let config_path = run_dir.join("daemon.json");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let ip_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").ok();
        let links_before = links();
        let iptables_before = output(&mut Command::new("iptables-save"));
        let log = std::fs::File::create(run_dir.join("dockerd.log")).map_err(|e| e.to_string())?;
        let daemon = Command::new("dockerd")
            .arg("--config-file")
            .arg(&config_path)
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start dockerd: {e}"))?;
        let endpoint = format!("unix://{}", run_dir.join("docker.sock").display());
        let bed = DockerBed {
            endpoint,
            agent_address: None,
            tls_dir: Some(tls_dir),
            daemon,
            ip_forward,
            links_before,
            iptables_before,
            storage: None,
        };
        bed.wait_ready(&format!("dockerd (see {RUN_DIR}/dockerd.log)"))?;
        bed.ensure_busybox(&run_dir)?;
        bed.ensure_debian(cache, &run_dir)?;
        Ok(bed)
    }

    /// Podman's Docker-compatible service, the same API through bollard: `podman system service`
    /// with a `containers.conf` of its own (runc, cgroupfs, explicit ulimits — the root shell
    /// here cannot raise them — and `10.200.64.0/18` pools), storage under the cache, the
    /// busybox image imported. Only the busybox tests run on it (no Debian image).
    pub fn start_podman(cache: Option<&Path>) -> Result<Self> {
        let run_dir = PathBuf::from(PODMAN_DIR);
        std::fs::create_dir_all(&run_dir).map_err(|e| format!("{}: {e}", run_dir.display()))?;
        let pidfile = run_dir.join("service.pid");
        if let Some(pid) = std::fs::read_to_string(&pidfile).ok().and_then(|p| p.trim().parse::<i32>().ok()) {
            let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            std::thread::sleep(Duration::from_secs(1));
        }
        let conf = run_dir.join("containers.conf");
        std::fs::write(
            &conf,
            "[containers]\ndefault_ulimits = [\"nofile=20000:20000\", \"nproc=32768:32768\"]\n\
             [engine]\nruntime = \"runc\"\ncgroup_manager = \"cgroupfs\"\nevents_logger = \"file\"\n\
             [network]\nnetwork_backend = \"netavark\"\ndefault_subnet = \"10.200.60.0/24\"\n\
             default_subnet_pools = [{\"base\" = \"10.200.64.0/18\", \"size\" = 24}]\n",
        )
        .map_err(|e| e.to_string())?;
        let ip_forward = std::fs::read_to_string("/proc/sys/net/ipv4/ip_forward").ok();
        let links_before = links();
        let iptables_before = output(&mut Command::new("iptables-save"));
        let _ = Command::new("ip").args(["addr", "add", &format!("{PODMAN_AGENT_ADDRESS}/32"), "dev", "lo"]).stderr(Stdio::null()).status();
        let storage = cache.map(|c| c.join("podman")).unwrap_or_else(|| run_dir.join("storage"));
        let socket = run_dir.join("podman.sock");
        let log = std::fs::File::create(run_dir.join("service.log")).map_err(|e| e.to_string())?;
        let daemon = Command::new("podman")
            .arg("--root")
            .arg(&storage)
            .arg("--runroot")
            .arg(run_dir.join("run"))
            .args(["system", "service", "--time=0"])
            .arg(format!("unix://{}", socket.display()))
            .env("CONTAINERS_CONF", &conf)
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .stdin(Stdio::null())
            .spawn()
            .map_err(|e| format!("cannot start podman: {e}"))?;
        std::fs::write(&pidfile, daemon.id().to_string()).map_err(|e| e.to_string())?;
        let endpoint = format!("unix://{}", socket.display());
        let bed = DockerBed {
            endpoint,
            agent_address: Some(PODMAN_AGENT_ADDRESS.into()),
            tls_dir: None,
            daemon,
            ip_forward,
            links_before,
            iptables_before,
            storage: Some(storage),
        };
        bed.wait_ready(&format!("podman (see {PODMAN_DIR}/service.log)"))?;
        bed.ensure_busybox(&run_dir)?;
        Ok(bed)
    }

    /// Waits (30 s at most) until the engine answers, then removes what an interrupted earlier
    /// run left there.
    fn wait_ready(&self, what: &str) -> Result {
        let deadline = Instant::now() + Duration::from_secs(30);
        while output(docker(&self.endpoint).args(["version", "--format", "{{.Server.Version}}"])).is_none() {
            if Instant::now() > deadline {
                return Err(format!("{what} did not answer within 30 s"));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.remove_leftovers();
        Ok(())
    }

    /// Containers and networks of Slipstream servers from an earlier, interrupted test run.
    fn remove_leftovers(&self) {
        let filter = "label=io.slipstream.server";
        let ids = output(docker(&self.endpoint).args(["ps", "-aq", "--filter", filter])).unwrap_or_default();
        let ids: Vec<&str> = ids.split_whitespace().collect();
        if !ids.is_empty() {
            let _ = docker(&self.endpoint).args(["rm", "-f"]).args(&ids).stdout(Stdio::null()).status();
        }
        let _ = docker(&self.endpoint).args(["network", "prune", "-f", "--filter", filter]).stdout(Stdio::null()).status();
    }

    /// `slipstream/busybox:latest` from the host's static busybox (2 MB, made once, then cached
    /// in the data-root).
    fn ensure_busybox(&self, run_dir: &Path) -> Result {
        if output(docker(&self.endpoint).args(["image", "inspect", BUSYBOX_IMAGE])).is_some() {
            return Ok(());
        }
        step(&format!("import {BUSYBOX_IMAGE} from busybox-static"), || {
            let root = run_dir.join("busybox-rootfs");
            let _ = std::fs::remove_dir_all(&root);
            for d in ["bin", "sbin", "usr/bin", "usr/sbin", "etc", "proc", "sys", "dev", "tmp", "root"] {
                std::fs::create_dir_all(root.join(d)).map_err(|e| e.to_string())?;
            }
            std::fs::copy("/bin/busybox", root.join("bin/busybox")).map_err(|e| format!("/bin/busybox (busybox-static): {e}"))?;
            let applets = output(Command::new("/bin/busybox").arg("--list")).ok_or("busybox --list failed")?;
            for a in applets.lines().map(str::trim).filter(|a| !a.is_empty() && *a != "busybox") {
                let _ = std::os::unix::fs::symlink("busybox", root.join("bin").join(a));
            }
            std::fs::write(root.join("etc/passwd"), "root:x:0:0:root:/root:/bin/sh\n").map_err(|e| e.to_string())?;
            std::fs::write(root.join("etc/group"), "root:x:0:\n").map_err(|e| e.to_string())?;
            run(Command::new("chmod").arg("1777").arg(root.join("tmp")))?;
            let tar = run_dir.join("busybox-rootfs.tar");
            run(Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&tar).arg("."))?;
            run(docker(&self.endpoint)
                .args(["import", "-c", "CMD [\"/bin/sh\"]", "-c", "ENV PATH=/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin"])
                .arg(&tar)
                .arg(BUSYBOX_IMAGE)
                .stdout(Stdio::null()))
        })
    }

    /// `slipstream/debian:bookworm` from `debootstrap --variant=minbase` (about a minute, once:
    /// the root file system is kept as a tar under the cache, the image in the data-root).
    fn ensure_debian(&self, cache: Option<&Path>, run_dir: &Path) -> Result {
        if output(docker(&self.endpoint).args(["image", "inspect", DEBIAN_IMAGE])).is_some() {
            return Ok(());
        }
        let tar = cache.unwrap_or(run_dir).join("images").join("debian-bookworm-minbase.tar");
        if !tar.is_file() {
            step("debootstrap a Debian bookworm root file system", || {
                let root = run_dir.join("debian-rootfs");
                let _ = std::fs::remove_dir_all(&root);
                run(Command::new("debootstrap")
                    .args(["--variant=minbase", "bookworm"])
                    .arg(&root)
                    .arg("http://deb.debian.org/debian")
                    .stdout(Stdio::null()))?;
                std::fs::create_dir_all(tar.parent().expect("a folder")).map_err(|e| e.to_string())?;
                let part = tar.with_extension("part");
                run(Command::new("tar").arg("-C").arg(&root).arg("-cf").arg(&part).arg("."))?;
                std::fs::rename(&part, &tar).map_err(|e| e.to_string())?;
                let _ = std::fs::remove_dir_all(&root);
                Ok(())
            })?;
        }
        step(&format!("import {DEBIAN_IMAGE}"), || {
            run(docker(&self.endpoint)
                .args([
                    "import",
                    "-c",
                    "CMD [\"/bin/bash\"]",
                    "-c",
                    "ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
                ])
                .arg(&tar)
                .arg(DEBIAN_IMAGE)
                .stdout(Stdio::null()))
        })
    }
}

/// The daemon's config: ours, with the fixed parts (socket, 10.200.x pools, cgroupfs).
fn daemon_config(paths: &[(&str, String)]) -> String {
    let mut fields: Vec<String> = paths.iter().map(|(k, v)| format!("\"{k}\": \"{v}\"")).collect();
    fields.push(format!("\"hosts\": [\"unix://{RUN_DIR}/docker.sock\", \"{TLS_ENDPOINT}\"]"));
    // TLS on the tcp:// host only: clients must show a certificate the bed's CA signed.
    fields.push("\"tlsverify\": true".into());
    fields.push("\"bip\": \"10.200.70.1/24\"".into());
    fields.push("\"default-address-pools\": [{\"base\": \"10.200.128.0/17\", \"size\": 24}]".into());
    fields.push("\"storage-driver\": \"overlay2\"".into());
    fields.push("\"exec-opts\": [\"native.cgroupdriver=cgroupfs\"]".into());
    format!("{{ {} }}\n", fields.join(",\n  "))
}

/// A throwaway CA, the engine's certificate (for 127.0.0.1), a client certificate it signed,
/// and a stranger's certificate from a CA of its own (P-256 keys: quick to make).
fn make_certificates(dir: &Path) -> Result {
    let _ = std::fs::remove_dir_all(dir);
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let openssl = |args: &[&str]| {
        let mut c = Command::new("openssl");
        c.current_dir(dir).args(args).stdout(Stdio::null()).stderr(Stdio::null());
        run(&mut c)
    };
    let ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"];
    for ca in ["ca", "stranger-ca"] {
        let (key, cert, subject) = (format!("{ca}-key.pem"), format!("{ca}.pem"), format!("/CN=slipstream test {ca}"));
        openssl(&[&["req", "-x509"][..], &ec, &["-keyout", &key, "-out", &cert, "-days", "7", "-subj", &subject]].concat())?;
    }
    std::fs::write(dir.join("server.ext"), "subjectAltName=IP:127.0.0.1\nextendedKeyUsage=serverAuth\n").map_err(|e| e.to_string())?;
    std::fs::write(dir.join("client.ext"), "extendedKeyUsage=clientAuth\n").map_err(|e| e.to_string())?;
    for (name, ca, ext) in [("server", "ca", "server.ext"), ("client", "ca", "client.ext"), ("stranger", "stranger-ca", "client.ext")] {
        let (key, csr, cert) = (format!("{name}-key.pem"), format!("{name}.csr"), format!("{name}-cert.pem"));
        openssl(&[&["req"][..], &ec, &["-keyout", &key, "-out", &csr, "-subj", &format!("/CN=slipstream test {name}")]].concat())?;
        openssl(&[
            "x509",
            "-req",
            "-in",
            &csr,
            "-CA",
            &format!("{ca}.pem"),
            "-CAkey",
            &format!("{ca}-key.pem"),
            "-CAcreateserial",
            "-out",
            &cert,
            "-days",
            "7",
            "-extfile",
            ext,
        ])?;
        if name != "server" {
            // What a user pastes as their credential: the key and the certificate, in PEM.
            let read = |f: &str| std::fs::read_to_string(dir.join(f)).map_err(|e| e.to_string());
            std::fs::write(dir.join(format!("{name}.pem")), format!("{}{}", read(&key)?, read(&cert)?)).map_err(|e| e.to_string())?;
        }
    }
    Ok(())
}

/// `iptables-save` output with the `filter` and `nat` tables it lacks added empty: restoring a
/// table that was not loaded before (a fresh host) must still remove what the daemon put there,
/// and `iptables-restore` leaves alone the tables its input does not name.
fn with_empty_tables(saved: &str) -> String {
    let mut out = saved.to_string();
    for (table, chains) in [("filter", &["INPUT", "FORWARD", "OUTPUT"][..]), ("nat", &["PREROUTING", "INPUT", "OUTPUT", "POSTROUTING"][..])]
    {
        if !saved.lines().any(|l| l.trim() == format!("*{table}")) {
            out.push_str(&format!("*{table}\n"));
            for c in chains {
                out.push_str(&format!(":{c} ACCEPT [0:0]\n"));
            }
            out.push_str("COMMIT\n");
        }
    }
    out
}

impl Drop for DockerBed {
    fn drop(&mut self) {
        self.remove_leftovers();
        let pid = self.daemon.id().to_string();
        let _ = Command::new("kill").args(["-TERM", &pid]).status();
        let deadline = Instant::now() + Duration::from_secs(20);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.daemon.try_wait() {
                break;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        let _ = self.daemon.kill();
        let _ = self.daemon.wait();
        if let Some(storage) = &self.storage {
            for pid in processes_naming(storage) {
                let _ = Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            }
        }
        // What the daemon left on the host: its bridges, its iptables chains, forwarding.
        for link in links().into_iter().filter(|l| !self.links_before.contains(l)) {
            if link == "docker0" || link.starts_with("br-") || link.starts_with("veth") || link.starts_with("podman") {
                let _ = Command::new("ip").args(["link", "del", &link]).stderr(Stdio::null()).status();
            }
        }
        if let Some(saved) = &self.iptables_before {
            use std::io::Write;
            if let Ok(mut restore) = Command::new("iptables-restore").stdin(Stdio::piped()).spawn() {
                if let Some(mut stdin) = restore.stdin.take() {
                    let _ = stdin.write_all(with_empty_tables(saved).as_bytes());
                }
                let _ = restore.wait();
            }
        }
        if let Some(before) = &self.ip_forward {
            let _ = std::fs::write("/proc/sys/net/ipv4/ip_forward", before.trim());
        }
        if let Some(address) = &self.agent_address {
            let _ = Command::new("ip").args(["addr", "del", &format!("{address}/32"), "dev", "lo"]).stderr(Stdio::null()).status();
        }
    }
}

/// The processes with `dir` (or a path under it) among their arguments.
fn processes_naming(dir: &Path) -> Vec<u32> {
    let dir = dir.display().to_string();
    let mut out = Vec::new();
    for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Some(pid) = e.file_name().to_str().and_then(|p| p.parse::<u32>().ok()) else { continue };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else { continue };
        let names = |arg: &[u8]| {
            let arg = String::from_utf8_lossy(arg);
            arg == dir || arg.strip_prefix(dir.as_str()).is_some_and(|rest| rest.starts_with('/'))
        };
        if pid != std::process::id() && cmdline.split(|b| *b == 0).any(names) {
            out.push(pid);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_processes_naming_a_directory_are_found() {
        let dir = std::env::temp_dir().join(format!("xtask-naming-{}", std::process::id()));
        // `cat - FILE` reads its standard input first: it waits with the path in its arguments.
        let mut child = std::process::Command::new("cat")
            .arg("-")
            .arg(dir.join("x"))
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        // Until `cat` echoes a line, the child may not have called exec yet and still carry
        // this test's command line (the suite's CI failed on that once).
        use std::io::{BufRead, Write};
        child.stdin.as_mut().unwrap().write_all(b"ready\n").unwrap();
        let mut echoed = String::new();
        std::io::BufReader::new(child.stdout.as_mut().unwrap()).read_line(&mut echoed).unwrap();
        assert_eq!(echoed, "ready\n");
        let found = super::processes_naming(&dir);
        // `…/xtask-naming-12` is another directory than `…/xtask-naming-123`.
        let shorter = dir.display().to_string();
        let other = super::processes_naming(std::path::Path::new(&shorter[..shorter.len() - 1]));
        child.kill().unwrap();
        child.wait().unwrap();
        assert_eq!(found, [child.id()]);
        assert!(!other.contains(&child.id()), "a directory whose name only starts the same is another one");
    }

    #[test]
    fn tables_missing_before_are_restored_empty() {
        let fresh = super::with_empty_tables("");
        assert!(fresh.contains("*filter\n:INPUT ACCEPT [0:0]\n:FORWARD ACCEPT [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n"), "{fresh}");
        assert!(fresh.contains("*nat\n"), "{fresh}");
        let saved = "*filter\n:INPUT ACCEPT [0:0]\n:FORWARD DROP [0:0]\n:OUTPUT ACCEPT [0:0]\nCOMMIT\n";
        let kept = super::with_empty_tables(saved);
        assert!(kept.starts_with(saved) && kept.matches("*filter").count() == 1 && kept.contains("*nat\n"), "{kept}");
    }
}
