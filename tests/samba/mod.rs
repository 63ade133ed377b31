//! A private Samba FSRVP server for the MS-FSRVP comparison (tests/samba_fsrvp.rs): an
//! smbd with `rpcd_fsrvp` and `vfs_shell_snap` in a temporary folder on a free loopback
//! port, stopped on drop, and `rpcclient` / `smbclient` runs against it with their output
//! parsed into result codes.

use std::fs;
use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};
use uuid::Uuid;

/// Samba's message-sequence timer, shortened (`fss:sequence timeout`) so that expiry can be
/// watched in a test; it replaces every one of Samba's timer values. The calls of one
/// `fss_create_expose` follow each other within milliseconds, and two sequences that must
/// follow each other go in one rpcclient run (`Samba::rpc_batch`).
pub const SEQUENCE_TIMEOUT: Duration = Duration::from_secs(1);
/// Long enough for Samba's shortened timer to have fired.
pub const PAST_TIMER: Duration = Duration::from_millis(1700);
pub const PASSWORD: &str = "hvsim-Fsrvp-1";

/// A private smbd with the FSRVP server, in its own temporary folder; killed on drop.
pub struct Samba {
    dir: tempfile::TempDir,
    conf: PathBuf,
    port: u16,
    smbd: Child,
}

/// Why the real server cannot run here.
pub fn unavailable() -> Option<String> {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        return Some("smbd must run as root to serve FSRVP".into());
    }
    for tool in ["smbd", "rpcclient", "smbclient", "smbpasswd"] {
        if Command::new(tool).arg("--version").output().is_err() {
            return Some(format!("{tool} is not installed (./test.sh installs it)"));
        }
    }
    None
}

pub fn free_port() -> u16 {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind a loopback port");
    l.local_addr().expect("local address").port()
}

pub fn write_script(path: &Path, body: &str) {
    fs::write(path, format!("#!/bin/sh\n{body}\n")).expect("write script");
    fs::set_permissions(path, fs::Permissions::from_mode(0o755)).expect("chmod script");
}

impl Samba {
    pub fn start() -> Samba {
        let dir = tempfile::tempdir().expect("temporary folder");
        let d = dir.path();
        for sub in [
            "data/share1",
            "data/included",
            "data/nosnap",
            "snaps",
            "private",
            "lock",
            "state",
            "cache",
            "pid",
            "ncalrpc",
            "log",
            "usershares",
        ] {
            fs::create_dir_all(d.join(sub)).expect("create folder");
        }
        fs::write(d.join("data/share1/file.txt"), b"before").expect("write share file");
        // shell_snap: the check script accepts any path but `nosnap` (an unsupported file
        // store); create copies the share's directory, or fails while the share holds
        // `.fail-snapshot`; delete removes the copy.
        let snaps = d.join("snaps");
        write_script(
            &d.join("check.sh"),
            "case \"$1\" in *nosnap*) exit 1;; esac\nexit 0",
        );
        write_script(
            &d.join("create.sh"),
            &format!(
                "[ -e \"$1/.fail-snapshot\" ] && exit 1\n\
                 snap=\"{}/$(basename \"$1\")-$(date +%s%N)\"\n\
                 cp -a --reflink=auto \"$1\" \"$snap\" && echo \"$snap\"",
                snaps.display()
            ),
        );
        write_script(&d.join("delete.sh"), "rm -rf \"$2\"");
        let port = free_port();
        let snap_opts = |name: &str, path: &Path| {
            format!(
                "[{name}]\n  path = {}\n  read only = no\n  vfs objects = shell_snap\n  \
                 shell_snap:check path command = {d}/check.sh\n  \
                 shell_snap:create command = {d}/create.sh\n  \
                 shell_snap:delete command = {d}/delete.sh\n",
                path.display(),
                d = d.display()
            )
        };
        // Samba clones a share for exposure from smb.conf itself or the registry: a share
        // defined in an included file cannot be cloned, so its ExposeShadowCopySet fails.
        fs::write(
            d.join("included.conf"),
            snap_opts("included", &d.join("data/included")),
        )
        .expect("write included.conf");
        let conf = d.join("smb.conf");
        let text = format!(
            "[global]\n  netbios name = HVSIMFS\n  workgroup = HVSIM\n  \
             server role = standalone server\n  interfaces = 127.0.0.1\n  \
             bind interfaces only = yes\n  smb ports = {port}\n  disable netbios = yes\n  \
             private dir = {d}/private\n  lock directory = {d}/lock\n  \
             state directory = {d}/state\n  cache directory = {d}/cache\n  \
             pid directory = {d}/pid\n  ncalrpc dir = {d}/ncalrpc\n  \
             log file = {d}/log/log.%m\n  log level = 1 rpc_srv:2\n  \
             passdb backend = tdbsam:{d}/private/passdb.tdb\n  \
             usershare path = {d}/usershares\n  usershare max shares = 0\n  \
             load printers = no\n  printing = bsd\n  printcap name = /dev/null\n  \
             disable spoolss = yes\n  \
             registry shares = yes\n  \
             rpc_server:fssagentrpc = external\n  \
             fss:sequence timeout = {timeout}\n  \
             # One worker: each rpcd_fsrvp process keeps its own FSRVP state.\n  \
             rpcd_fsrvp:num_workers = 1\n  rpcd_fsrvp:idle_seconds = 600\n  \
             include = {d}/included.conf\n{share1}{alias}{nosnap}",
            d = d.display(),
            timeout = SEQUENCE_TIMEOUT.as_secs(),
            share1 = snap_opts("share1", &d.join("data/share1")),
            // A second share on the same directory: the same volume for FSRVP.
            alias = snap_opts("share1alias", &d.join("data/share1")),
            nosnap = snap_opts("nosnap", &d.join("data/nosnap")),
        );
        fs::write(&conf, text).expect("write smb.conf");
        // root (who may call FSRVP: the user that started smbd) and nobody (who may not).
        for user in ["root", "nobody"] {
            let mut p = Command::new("smbpasswd")
                .arg("-c")
                .arg(&conf)
                .args(["-s", "-a", user])
                .stdin(Stdio::piped())
                .stdout(Stdio::null())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run smbpasswd");
            use std::io::Write;
            let pw = format!("{PASSWORD}\n{PASSWORD}\n");
            p.stdin.take().unwrap().write_all(pw.as_bytes()).unwrap();
            let out = p.wait_with_output().expect("smbpasswd");
            assert!(
                out.status.success(),
                "smbpasswd -a {user}: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        let log_dir = d.join("log");
        let smbd = Command::new("smbd")
            .args(["--foreground", "--no-process-group", "--configfile"])
            .arg(&conf)
            .arg("--log-basename")
            .arg(&log_dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own process group, so that drop can stop smbd and its children at once.
            .process_group(0)
            .spawn()
            .expect("start smbd");
        let mut samba = Samba {
            dir,
            conf,
            port,
            smbd,
        };
        samba.wait_for_port();
        samba
    }

    /// Waits (bounded) until smbd accepts connections on its port.
    pub fn wait_for_port(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            if TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return;
            }
            if let Ok(Some(status)) = self.smbd.try_wait() {
                panic!("smbd exited at start ({status})\n{}", self.logs());
            }
            assert!(
                Instant::now() < deadline,
                "smbd did not listen on 127.0.0.1:{} within 15 s\n{}",
                self.port,
                self.logs()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn path(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    /// Runs one rpcclient command as `user`; its output (messages and errors in order).
    pub fn rpc_as(&self, user: &str, cmd: &str) -> String {
        let out = Command::new("rpcclient")
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--user")
            .arg(format!("{user}%{PASSWORD}"))
            .arg("--configfile")
            .arg(&self.conf)
            .arg("--debug-stdout")
            .args(["--command", cmd, "127.0.0.1"])
            .output()
            .expect("run rpcclient");
        let mut text = String::from_utf8_lossy(&out.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&out.stderr));
        text
    }

    pub fn rpc(&self, cmd: &str) -> String {
        self.rpc_as("root", cmd)
    }

    /// A single call's answer: Ok(output) or Err(the 32-bit result code).
    pub fn call(&self, cmd: &str) -> Result<String, u32> {
        let out = self.rpc(cmd);
        match result_code(&out) {
            Some(code) => Err(code),
            None if out.contains("NT_STATUS_") || out.contains("usage:") => {
                panic!("rpcclient {cmd}: no result code in\n{out}\n{}", self.logs())
            }
            None => Ok(out),
        }
    }

    pub fn create_expose(&self, context: &str, mode: &str, shares: &[&str]) -> Flow {
        Flow::parse(&self.rpc(&create_expose_cmd(context, mode, shares)))
    }

    /// Several commands in one rpcclient run, so that they follow each other within
    /// milliseconds (no new process, login and pipe between them); the output of each.
    pub fn rpc_batch(&self, cmds: &[String]) -> Vec<String> {
        // GetSupportedVersion between two commands marks where one's output ends.
        const MARK: &str = "supports FSRVP versions from";
        let out = self.rpc(&cmds.join("; fss_get_sup_version; "));
        let parts: Vec<String> =
            out.split_inclusive('\n')
                .fold(vec![String::new()], |mut v, line| {
                    if line.contains(MARK) {
                        v.push(String::new());
                    } else {
                        v.last_mut().unwrap().push_str(line);
                    }
                    v
                });
        assert_eq!(parts.len(), cmds.len(), "rpcclient {cmds:?}:\n{out}");
        parts
    }

    /// The file `name` of an exposed shadow-copy share, read back over SMB.
    pub fn read_exposed(&self, share: &str, name: &str) -> Vec<u8> {
        let out = Command::new("smbclient")
            .arg(format!("//127.0.0.1/{share}"))
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--user")
            .arg(format!("root%{PASSWORD}"))
            .arg("--configfile")
            .arg(&self.conf)
            .args(["--command", &format!("get {name} -")])
            .output()
            .expect("run smbclient");
        assert!(
            out.status.success(),
            "smbclient //127.0.0.1/{share} get {name}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        out.stdout
    }

    /// Snapshot directories the create script made that still exist.
    pub fn snapshots(&self) -> Vec<String> {
        let mut v: Vec<String> = fs::read_dir(self.path("snaps"))
            .expect("read snaps")
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        v.sort();
        v
    }

    /// The last lines of every Samba log, for a failure's message.
    pub fn logs(&self) -> String {
        let mut s = String::new();
        if let Ok(dir) = fs::read_dir(self.path("log")) {
            for e in dir.flatten() {
                let mut text = String::new();
                if fs::File::open(e.path())
                    .and_then(|mut f| f.read_to_string(&mut text))
                    .is_ok()
                {
                    let lines: Vec<&str> = text.lines().collect();
                    let tail = &lines[lines.len().saturating_sub(40)..];
                    s += &format!("--- {}\n{}\n", e.path().display(), tail.join("\n"));
                }
            }
        }
        s
    }

    /// Stops a process group with SIGTERM, then SIGKILL after a bounded wait.
    pub fn stop_group(pgid: i32) {
        // SAFETY: kill has no memory preconditions; a negative pid names a group.
        unsafe { libc::kill(-pgid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(3);
        // SAFETY: signal 0 only probes whether the group still exists.
        while unsafe { libc::kill(-pgid, 0) } == 0 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(50));
        }
        // SAFETY: as above.
        unsafe { libc::kill(-pgid, libc::SIGKILL) };
    }
}

impl Drop for Samba {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("Samba logs:\n{}", self.logs());
        }
        // samba-dcerpcd (started by smbd on demand) leads its own session with the
        // rpcd_* helpers; its pid file is in this server's private pid directory.
        let pid_file = self.path("pid/samba-dcerpcd.pid");
        if let Some(pid) = fs::read_to_string(pid_file)
            .ok()
            .and_then(|s| s.trim().parse::<i32>().ok())
        {
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            if comm.trim() == "samba-dcerpcd" {
                Samba::stop_group(pid);
            }
        }
        Samba::stop_group(self.smbd.id() as i32);
        let _ = self.smbd.wait();
    }
}

pub fn create_expose_cmd(context: &str, mode: &str, shares: &[&str]) -> String {
    format!("fss_create_expose {context} {mode} {}", shares.join(" "))
}

/// The result code of a failed rpcclient command, AbortShadowCopySet's aside.
pub fn result_code(out: &str) -> Option<u32> {
    out.lines()
        .filter(|l| !l.starts_with("AbortShadowCopySet"))
        .find_map(line_code)
}

/// The code in one error line: `… failed: <status> result: 0x…` or
/// `failed … response: 0x…`.
pub fn line_code(l: &str) -> Option<u32> {
    let at = match l.find("result: 0x") {
        Some(i) => i + "result: 0x".len(),
        None if l.starts_with("failed") => l.find("response: 0x")? + "response: 0x".len(),
        None => return None,
    };
    let hex: String = l[at..]
        .chars()
        .take_while(|c| c.is_ascii_hexdigit())
        .collect();
    u32::from_str_radix(&hex, 16).ok()
}

/// What one `fss_create_expose` sequence did.
#[derive(Debug, Default)]
pub struct Flow {
    pub set: Option<Uuid>,
    pub copies: Vec<Uuid>,
    /// The call that failed and its code.
    pub failed: Option<(String, u32)>,
    /// AbortShadowCopySet's code when the client's abort itself failed.
    pub abort_failed: Option<u32>,
    /// Exposed share names, from GetShareMapping.
    pub exposed: Vec<String>,
}

impl Flow {
    pub fn parse(out: &str) -> Flow {
        let mut f = Flow::default();
        for l in out.lines() {
            if let Some(id) = l.strip_suffix(": shadow-copy set created") {
                f.set = Some(Uuid::parse_str(id).expect("set id"));
            } else if l.ends_with("shadow-copy added to set") {
                let sc = l.split_once('(').and_then(|(_, r)| r.split_once(')'));
                f.copies
                    .push(Uuid::parse_str(sc.expect("copy id").0).expect("copy id"));
            } else if let Some((_, rest)) = l.split_once("): share ") {
                if let Some((name, _)) = rest.split_once(" exposed as a snapshot of ") {
                    f.exposed.push(name.to_string());
                }
            } else if let Some((op, _)) = l.split_once(" failed: ") {
                let code = line_code(l).unwrap_or_else(|| panic!("no code in {l:?}"));
                if op == "AbortShadowCopySet" {
                    f.abort_failed = Some(code);
                } else {
                    f.failed = Some((op.to_string(), code));
                }
            }
        }
        assert!(
            f.failed.is_some() || !f.exposed.is_empty(),
            "fss_create_expose neither failed nor exposed:\n{out}"
        );
        f
    }

    pub fn failure(&self) -> Option<(&str, u32)> {
        self.failed.as_ref().map(|(op, c)| (op.as_str(), *c))
    }
}
