//! SSH hosts for tests: each a network namespace with its own `10.200.x.y` address on a bridge
//! the test creates, running Debian's `sshd` with a config, host key and `authorized_keys` of
//! its own. Everything is made by [`SshHosts::start`] and removed on drop: sshd is stopped by
//! its PID, whatever is still running in a namespace is killed, the namespaces and the bridge
//! are deleted. Needs root, `iproute2` and `openssh-server` (`cargo xtask test` installs it).

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use crate::{temp_dir, Proc};

/// Subnets `10.200.10.0/24` to `10.200.57.0/24`: clear of the Docker bed's pools
/// (`10.200.70.0/24`, `10.200.128.0/17`), Podman's (`10.200.64.0/18`) and its `10.200.59.1`.
const FIRST_SUBNET: u32 = 10;
const SUBNETS: u32 = 48;

pub struct SshHost {
    /// `10.200.N.M`.
    pub address: String,
    /// The host's public key line (`ssh-ed25519 AAAA…`), to pin.
    pub host_key: String,
    /// The directory instances go to on this host (the namespaces share the file system, so
    /// each host gets its own, as separate machines would have).
    pub work_dir: PathBuf,
    netns: String,
    sshd: Option<Proc>,
}

pub struct SshHosts {
    pub hosts: Vec<SshHost>,
    /// The bridge's address: where the hosts reach this machine (the server's agent address).
    pub gateway: String,
    /// A private key `authorized_keys` of every host accepts (OpenSSH form).
    pub user_key: String,
    /// A private key no host accepts.
    pub stranger_key: String,
    /// A third key pair (`owner_ed25519` in `dir`), for a user's profile: accepted only where
    /// the connector installed it.
    pub owner_key_file: PathBuf,
    pub owner_public_key: String,
    bridge: String,
    /// Whether an iptables rule was added for the bridge (removed on drop).
    forward: bool,
    pub dir: PathBuf,
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip").args(args).output().map_err(|e| format!("ip: {e}"))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!("ip {}: {}", args.join(" "), String::from_utf8_lossy(&out.stderr).trim()))
    }
}

fn keygen(path: &Path) -> String {
    let _ = std::fs::remove_file(path);
    let ok = Command::new("ssh-keygen").args(["-q", "-t", "ed25519", "-N", "", "-C", "slipstream-test", "-f"]).arg(path).status();
    assert!(ok.is_ok_and(|s| s.success()), "ssh-keygen runs (openssh-client)");
    std::fs::read_to_string(path).expect("the key was written")
}

impl SshHosts {
    /// `n` hosts, each running sshd on port 22 of its own address.
    pub fn start(n: usize) -> SshHosts {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        assert!(Path::new("/usr/sbin/sshd").exists(), "SSH tests need /usr/sbin/sshd (apt-get install openssh-server)");
        let subnet = FIRST_SUBNET + (std::process::id() * 7 + NEXT.fetch_add(1, Ordering::SeqCst)) % SUBNETS;
        let bridge = format!("slssh{subnet}");
        let prefix = format!("slssh{subnet}-");
        // What a crashed earlier test left on this subnet.
        let _ = ip(&["link", "del", &bridge]);
        for ns in namespaces().into_iter().filter(|n| n.starts_with(&prefix)) {
            kill_all_in(&ns);
            let _ = ip(&["netns", "del", &ns]);
        }
        let gateway = format!("10.200.{subnet}.1");
        ip(&["link", "add", &bridge, "type", "bridge"]).expect("a bridge");
        ip(&["addr", "add", &format!("{gateway}/24"), "dev", &bridge]).expect("its address");
        // Hosts talk to each other over the bridge even when dockerd runs on this machine: it
        // loads br_netfilter (bridged traffic then goes through iptables) and sets the FORWARD
        // policy to DROP. One rule lets this bridge's own traffic through; removed on drop.
        let forward = accept_on_bridge(&bridge, "-I");
        ip(&["link", "set", &bridge, "up"]).expect("up");
        let dir = temp_dir("ssh-hosts");
        let user_key = keygen(&dir.join("user_ed25519"));
        let stranger_key = keygen(&dir.join("stranger_ed25519"));
        let owner_key_file = dir.join("owner_ed25519");
        keygen(&owner_key_file);
        let owner_public_key = std::fs::read_to_string(dir.join("owner_ed25519.pub")).expect("public key").trim().to_string();
        let authorized = std::fs::read_to_string(dir.join("user_ed25519.pub")).expect("public key");
        std::fs::create_dir_all("/run/sshd").expect("sshd's privilege-separation directory");
        let mut set = SshHosts {
            hosts: Vec::new(),
            gateway,
            user_key,
            stranger_key,
            owner_key_file,
            owner_public_key,
            bridge,
            forward,
            dir: dir.clone(),
        };
        for i in 0..n {
            let netns = format!("{prefix}{i}");
            let address = format!("10.200.{subnet}.{}", 11 + i);
            let veth = format!("{}v{i}", set.bridge);
            ip(&["netns", "add", &netns]).expect("a namespace");
            ip(&["link", "add", &veth, "type", "veth", "peer", "name", "eth0", "netns", &netns]).expect("a veth pair");
            ip(&["link", "set", &veth, "master", &set.bridge, "up"]).expect("on the bridge");
            ip(&["-n", &netns, "addr", "add", &format!("{address}/24"), "dev", "eth0"]).expect("the host's address");
            ip(&["-n", &netns, "link", "set", "eth0", "up"]).expect("up");
            ip(&["-n", &netns, "link", "set", "lo", "up"]).expect("lo up");
            ip(&["-n", &netns, "route", "add", "default", "via", &set.gateway]).expect("a route");
            let host_dir = dir.join(format!("host{i}"));
            let work_dir = host_dir.join("work");
            std::fs::create_dir_all(&work_dir).expect("the host's directory");
            keygen(&host_dir.join("host_ed25519"));
            let host_key = std::fs::read_to_string(host_dir.join("host_ed25519.pub")).expect("host key").trim().to_string();
            std::fs::write(host_dir.join("authorized_keys"), &authorized).expect("authorized_keys");
            let config = host_dir.join("sshd_config");
            std::fs::write(
                &config,
                format!(
                    "Port 22\nListenAddress {address}\nHostKey {hd}/host_ed25519\nAuthorizedKeysFile {hd}/authorized_keys\n\
                     PidFile {hd}/sshd.pid\nPasswordAuthentication no\nKbdInteractiveAuthentication no\nPubkeyAuthentication yes\n\
                     PermitRootLogin prohibit-password\nStrictModes no\nUsePAM no\nMaxStartups 100\nMaxSessions 20\n\
                     Subsystem sftp internal-sftp\n",
                    hd = host_dir.display()
                ),
            )
            .expect("sshd_config");
            let log = host_dir.join("sshd.log");
            // `ip netns exec` execs sshd itself: the PID is sshd's; -D keeps it in the foreground.
            let sshd = Proc::spawn(
                Command::new("ip").args(["netns", "exec", &netns, "/usr/sbin/sshd", "-D", "-f"]).arg(&config).arg("-E").arg(&log),
            )
            .expect("sshd starts");
            set.hosts.push(SshHost { address, host_key, work_dir, netns, sshd: Some(sshd) });
        }
        for h in &set.hosts {
            let deadline = Instant::now() + Duration::from_secs(10);
            while TcpStream::connect_timeout(&format!("{}:22", h.address).parse().expect("an address"), Duration::from_millis(200)).is_err()
            {
                assert!(Instant::now() < deadline, "sshd on {} did not listen (see {}/host*/sshd.log)", h.address, set.dir.display());
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        set
    }

    /// The `connectors:` entry of a settings file for these hosts: `name`, of kind `ssh`,
    /// `slots` per host, the server listening for agents on the bridge, the accepted user key
    /// as the pool key when `pool_key`; `pin` replaces the pinned key of a host (a host whose
    /// key "changed").
    pub fn connector_yaml(&self, name: &str, slots: usize, pool_key: bool, pin: &[(usize, &str)]) -> String {
        let keys: Vec<String> = self
            .hosts
            .iter()
            .enumerate()
            .map(|(i, h)| pin.iter().find(|(p, _)| *p == i).map(|(_, k)| k.to_string()).unwrap_or(h.host_key.clone()))
            .collect();
        let endpoints: Vec<String> = self.hosts.iter().map(|h| format!("\"{}:22\"", h.address)).collect();
        let dirs: Vec<String> = self.hosts.iter().map(|h| h.work_dir.display().to_string()).collect();
        let key_files: Vec<String> =
            (0..self.hosts.len()).map(|i| self.dir.join(format!("host{i}/authorized_keys")).display().to_string()).collect();
        let key_file = if pool_key { format!("      key_file: \"{}\"\n", self.dir.join("user_ed25519").display()) } else { String::new() };
        format!(
            "  {name}:\n    kind: ssh\n    endpoints: [{}]\n    options:\n      user: root\n      slots: \"{slots}\"\n      host_key: \"{}\"\n      work_dir: \"{}\"\n      authorized_keys: \"{}\"\n      agent_address: \"{}\"\n{key_file}",
            endpoints.join(", "),
            keys.join(","),
            dirs.join(","),
            key_files.join(","),
            self.gateway
        )
    }
}

impl SshHost {
    /// What runs in this host's namespace besides sshd (its listener and its per-connection
    /// processes): `pid comm` lines. Empty once every instance was stopped.
    pub fn leftovers(&self) -> Vec<String> {
        pids_in(&self.netns)
            .into_iter()
            .filter_map(|pid| {
                let comm = std::fs::read_to_string(format!("/proc/{pid}/comm")).ok()?.trim().to_string();
                (comm != "sshd").then(|| format!("{pid} {comm}"))
            })
            .collect()
    }

    /// Runs `command` on the host with the system `ssh` client and `key`; its stdout, or `None`
    /// if the login failed.
    pub fn ssh_login(&self, key: &Path, command: &str) -> Option<String> {
        let out = Command::new("ssh")
            .args([
                "-o",
                "BatchMode=yes",
                "-o",
                "StrictHostKeyChecking=no",
                "-o",
                "UserKnownHostsFile=/dev/null",
                "-o",
                "LogLevel=ERROR",
                "-i",
            ])
            .arg(key)
            .args(["-p", "22", &format!("root@{}", self.address), command])
            .output()
            .ok()?;
        out.status.success().then(|| String::from_utf8_lossy(&out.stdout).into_owned())
    }

    /// What is left in the host's work directory (instance directories; the agent's copy is
    /// not counted).
    pub fn instance_dirs(&self) -> Vec<String> {
        let mut out = Vec::new();
        for server in std::fs::read_dir(&self.work_dir).into_iter().flatten().flatten() {
            for run in std::fs::read_dir(server.path().join("runs")).into_iter().flatten().flatten() {
                out.push(run.path().display().to_string());
            }
        }
        out
    }
}

/// `iptables -I|-D FORWARD -i BRIDGE -o BRIDGE -j ACCEPT`; `false` without iptables (then
/// nothing filters bridged traffic: br_netfilter comes with it).
fn accept_on_bridge(bridge: &str, op: &str) -> bool {
    Command::new("iptables")
        .args(["-w", op, "FORWARD", "-i", bridge, "-o", bridge, "-j", "ACCEPT"])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn namespaces() -> Vec<String> {
    let out =
        Command::new("ip").args(["netns", "list"]).output().map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    out.lines().filter_map(|l| l.split_whitespace().next().map(String::from)).collect()
}

fn pids_in(netns: &str) -> Vec<i32> {
    let out = Command::new("ip")
        .args(["netns", "pids", netns])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).into_owned())
        .unwrap_or_default();
    out.split_whitespace().filter_map(|p| p.parse().ok()).collect()
}

fn kill_all_in(netns: &str) {
    for pid in pids_in(netns) {
        // SAFETY: kill(2) on processes inside a namespace this test bed made.
        unsafe { libc::kill(pid, libc::SIGKILL) };
    }
}

impl Drop for SshHosts {
    fn drop(&mut self) {
        for h in &mut self.hosts {
            drop(h.sshd.take());
            kill_all_in(&h.netns);
            let _ = ip(&["netns", "del", &h.netns]);
        }
        let _ = ip(&["link", "del", &self.bridge]);
        if self.forward {
            accept_on_bridge(&self.bridge, "-D");
        }
    }
}
