//! The processes a benchmark starts: each one is killed when its handle is
//! dropped, so an error, a panic or an interrupt never leaves a cluster
//! running; and the few things the benchmark reads about them from the
//! operating system (free ports, resident memory, disk usage).

use std::collections::HashSet;
use std::fs::File;
use std::io::{BufRead, BufReader};
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{bail, Context};
use tokio::sync::mpsc;

/// A running child process, killed (SIGKILL) and reaped on drop.
pub struct Process {
    name: String,
    child: Child,
    log: PathBuf,
    stdout: mpsc::UnboundedReceiver<String>,
    killed: bool,
}

impl Process {
    /// Starts `cmd` with stderr appended to `log`, and stdout lines kept for
    /// [`Process::wait_for_line`].
    pub fn spawn(name: &str, mut cmd: Command, log: &Path) -> anyhow::Result<Process> {
        let log_file =
            File::create(log).with_context(|| format!("create log file {}", log.display()))?;
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log_file)
            .spawn()
            .with_context(|| format!("start {name} ({:?})", cmd.get_program()))?;
        let (tx, rx) = mpsc::unbounded_channel();
        if let Some(out) = child.stdout.take() {
            // A plain thread: it only forwards lines, and must keep reading
            // to the end so the child never blocks on a full pipe.
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines().map_while(Result::ok) {
                    let _ = tx.send(line);
                }
            });
        }
        Ok(Process {
            name: name.to_string(),
            child,
            log: log.to_path_buf(),
            stdout: rx,
            killed: false,
        })
    }

    /// The process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the process prints a stdout line containing `marker`.
    pub async fn wait_for_line(&mut self, marker: &str, timeout: Duration) -> anyhow::Result<()> {
        let seen = tokio::time::timeout(timeout, async {
            while let Some(line) = self.stdout.recv().await {
                if line.contains(marker) {
                    return true;
                }
            }
            false
        })
        .await;
        match seen {
            Ok(true) => Ok(()),
            Ok(false) => bail!(
                "{} exited before printing {marker:?}; its log ends with:\n{}",
                self.name,
                self.log_tail(30)
            ),
            Err(_) => bail!(
                "{} did not print {marker:?} within {timeout:?}; its log ends with:\n{}",
                self.name,
                self.log_tail(30)
            ),
        }
    }

    /// Kills the process at once (SIGKILL, no chance to clean up) and reaps it.
    pub fn kill(&mut self) -> anyhow::Result<()> {
        if self.killed {
            return Ok(());
        }
        self.child
            .kill()
            .with_context(|| format!("kill {}", self.name))?;
        self.child
            .wait()
            .with_context(|| format!("reap {}", self.name))?;
        self.killed = true;
        Ok(())
    }

    /// Resident memory now, in bytes.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        let kb = parse_vm_rss_kb(&status)
            .with_context(|| format!("{path} of {} has no VmRSS line", self.name))?;
        Ok(kb * 1024)
    }

    /// The most resident memory the process has had so far (`VmHWM`), in
    /// bytes.
    pub fn peak_rss_bytes(&self) -> anyhow::Result<u64> {
        let path = format!("/proc/{}/status", self.pid());
        let status = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
        let kb = parse_status_kb(&status, "VmHWM")
            .with_context(|| format!("{path} of {} has no VmHWM line", self.name))?;
        Ok(kb * 1024)
    }

    /// CPU time the process has used so far (user and system), in
    /// seconds.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        process_cpu_seconds(self.pid())
    }

    /// The last `lines` lines of the process's log, for error messages.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = std::fs::read_to_string(&self.log).unwrap_or_default();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Process {
    fn drop(&mut self) {
        if !self.killed {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `VmRSS` of a `/proc/<pid>/status` text, in kB.
pub fn parse_vm_rss_kb(status: &str) -> Option<u64> {
    parse_status_kb(status, "VmRSS")
}

/// The kB figure of line `field` of a `/proc/<pid>/status` text.
pub fn parse_status_kb(status: &str, field: &str) -> Option<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix(field)?.strip_prefix(':'))?;
    line.split_whitespace().next()?.parse().ok()
}

/// Clock ticks per second of `/proc` CPU times (`USER_HZ`, 100 on every
/// Linux architecture the benchmarks run on).
const TICKS_PER_SECOND: f64 = 100.0;

/// CPU time process `pid` has used so far (user and system), in seconds.
pub fn process_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = std::fs::read_to_string(&path).with_context(|| format!("read {path}"))?;
    let ticks =
        parse_stat_cpu_ticks(&stat).with_context(|| format!("{path} is not as expected"))?;
    Ok(ticks as f64 / TICKS_PER_SECOND)
}

/// `utime + stime` of a `/proc/<pid>/stat` line, in ticks.
fn parse_stat_cpu_ticks(stat: &str) -> Option<u64> {
    // The command name may hold spaces and parentheses: count fields from
    // the last `)`. After it come field 3 (state) onwards; utime is 14.
    let fields: Vec<&str> = stat
        .get(stat.rfind(')')? + 1..)?
        .split_whitespace()
        .collect();
    let utime: u64 = fields.get(11)?.parse().ok()?;
    let stime: u64 = fields.get(12)?.parse().ok()?;
    Some(utime + stime)
}

/// CPU time every process on the machine has used since boot (all but
/// idle and I/O wait, from `/proc/stat`), in seconds.
pub fn machine_busy_seconds() -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string("/proc/stat").context("read /proc/stat")?;
    let ticks = parse_busy_ticks(&stat).context("/proc/stat has no cpu line")?;
    Ok(ticks as f64 / TICKS_PER_SECOND)
}

/// Busy ticks of the `cpu` line of `/proc/stat`: user, nice, system, irq,
/// softirq and steal (guest time is already counted in user).
fn parse_busy_ticks(stat: &str) -> Option<u64> {
    let line = stat.lines().find(|l| l.starts_with("cpu "))?;
    let v: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .map(|n| n.parse().ok())
        .collect::<Option<_>>()?;
    // user nice system idle iowait irq softirq steal
    Some(v.first()? + v.get(1)? + v.get(2)? + v.get(5)? + v.get(6)? + v.get(7)?)
}

/// Bytes a directory tree takes on disk (allocated blocks, as `du` counts).
pub fn disk_usage(path: &Path) -> anyhow::Result<u64> {
    let meta =
        std::fs::symlink_metadata(path).with_context(|| format!("stat {}", path.display()))?;
    let mut total = meta.blocks() * 512;
    if meta.is_dir() {
        for entry in std::fs::read_dir(path).with_context(|| format!("list {}", path.display()))? {
            let entry = entry.with_context(|| format!("list {}", path.display()))?;
            total += disk_usage(&entry.path())?;
        }
    }
    Ok(total)
}

/// Hands out loopback ports that were free when asked, never the same twice.
#[derive(Default)]
pub struct Ports {
    given: HashSet<u16>,
}

impl Ports {
    /// A port nothing listened on a moment ago.
    pub fn free(&mut self) -> anyhow::Result<u16> {
        for _ in 0..100 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .context("find a free loopback port")?
                .port();
            if self.given.insert(port) {
                return Ok(port);
            }
        }
        bail!("found no unused loopback port in 100 tries")
    }
}

/// Runs a short command to its end and returns its stdout; fails with its
/// stderr if it exits non-zero or takes longer than `timeout`.
pub async fn run_to_end(what: &str, cmd: Command, timeout: Duration) -> anyhow::Result<String> {
    let mut cmd = tokio::process::Command::from(cmd);
    cmd.stdin(Stdio::null()).kill_on_drop(true);
    let out = tokio::time::timeout(timeout, cmd.output())
        .await
        .with_context(|| format!("{what} did not finish within {timeout:?}"))?
        .with_context(|| format!("run {what}"))?;
    if !out.status.success() {
        bail!(
            "{what} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("{what} printed non-UTF-8"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_vm_rss_from_proc_status() {
        let status =
            "Name:\tcapstan\nVmPeak:\t  912345 kB\nVmRSS:\t   40964 kB\nRssAnon:\t 30000 kB\n";
        assert_eq!(parse_vm_rss_kb(status), Some(40_964));
        assert_eq!(parse_vm_rss_kb("Name:\tzombie\n"), None);
        let status = "VmHWM:\t   81234 kB\nVmRSS:\t   40964 kB\n";
        assert_eq!(parse_status_kb(status, "VmHWM"), Some(81_234));
        assert_eq!(parse_status_kb(status, "VmRSS"), Some(40_964));
        assert_eq!(parse_status_kb(status, "VmHW"), None);
    }

    #[test]
    fn reads_cpu_times_from_proc() {
        let stat = "4242 (tokio (rt) x) S 1 4242 4242 0 -1 4194560 900 0 0 0 250 75 0 0 20 0 9 0";
        assert_eq!(parse_stat_cpu_ticks(stat), Some(325));
        assert_eq!(parse_stat_cpu_ticks("4242 (x) S 1"), None);
        let proc_stat = "cpu  100 5 50 1000 40 3 2 1 0 0\ncpu0 50 2 25 500 20 1 1 0 0 0\n";
        assert_eq!(parse_busy_ticks(proc_stat), Some(161));
        assert!(process_cpu_seconds(std::process::id()).is_ok());
        assert!(machine_busy_seconds().expect("/proc/stat") > 0.0);
    }

    #[test]
    fn ports_are_never_handed_out_twice() {
        let mut ports = Ports::default();
        let mut seen = HashSet::new();
        for _ in 0..20 {
            assert!(seen.insert(ports.free().expect("a free port")));
        }
    }

    #[test]
    fn disk_usage_counts_files_below_a_directory() {
        let dir = tempfile::tempdir().expect("temp dir");
        std::fs::create_dir(dir.path().join("sub")).expect("mkdir");
        std::fs::write(dir.path().join("sub/a"), vec![1u8; 64 * 1024]).expect("write");
        let used = disk_usage(dir.path()).expect("du");
        assert!(used >= 64 * 1024, "{used}");
    }
}
