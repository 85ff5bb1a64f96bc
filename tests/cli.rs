//! The `capstan` binary as a user runs it on one machine: help, `up`,
//! `status`, install validation, and refusing a damaged data directory.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn capstan() -> Command {
    Command::new(env!("CARGO_BIN_EXE_capstan"))
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free loopback port")
}

/// A child process killed when the test ends, whatever happens.
struct Running(Child);
impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `capstan <args>` and waits until a stdout line contains `marker`.
fn start_until(args: &[&str], marker: &str, timeout: Duration) -> (Running, String) {
    let mut child = capstan()
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn capstan");
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let running = Running(child);
    let start = Instant::now();
    let mut seen = String::new();
    while start.elapsed() < timeout {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(100)) {
            seen.push_str(&line);
            seen.push('\n');
            if line.contains(marker) {
                // Keep draining so the child never blocks on a full pipe.
                std::thread::spawn(move || while rx.recv().is_ok() {});
                return (running, seen);
            }
        }
    }
    panic!("capstan {args:?} did not print {marker:?} within {timeout:?}; printed:\n{seen}");
}

fn status_json(dir: &Path) -> serde_json::Value {
    let out = capstan()
        .args([
            "--data-dir",
            dir.to_str().expect("utf-8 path"),
            "status",
            "--json",
        ])
        .output()
        .expect("run capstan status");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("status --json prints JSON")
}

#[test]
fn help_lists_every_subcommand() {
    let out = capstan()
        .arg("--help")
        .output()
        .expect("run capstan --help");
    assert!(out.status.success());
    let help = String::from_utf8_lossy(&out.stdout);
    for cmd in [
        "up",
        "install",
        "join",
        "manager",
        "agent",
        "registry",
        "token",
        "node",
        "status",
        "backup",
        "restore",
        "support-bundle",
        "doctor",
        "bench",
    ] {
        assert!(
            help.lines()
                .any(|l| l.trim_start().starts_with(&format!("{cmd} "))),
            "--help does not list {cmd}:\n{help}"
        );
    }
}

#[test]
fn unfinished_commands_say_so_and_fail() {
    let out = capstan()
        .args(["ca", "rotate"])
        .output()
        .expect("run capstan");
    assert!(!out.status.success(), "ca rotate exited 0");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("not implemented"), "ca rotate: {err}");
}

#[test]
fn operations_commands_without_a_node_say_what_is_missing() {
    let dir = tempfile::tempdir().expect("temp dir");
    let data = dir.path().join("data");
    let missing = dir.path().join("missing.cbk");
    for (args, says) in [
        (
            vec!["backup", "-o", "b.cbk", "--passphrase-file", "/nonexistent"],
            "passphrase-file",
        ),
        (
            vec!["restore", "--from", missing.to_str().unwrap(), "--check"],
            "missing.cbk",
        ),
        (
            vec!["support-bundle", "-o", "s.zip"],
            "no capstan node is installed",
        ),
        (vec!["doctor"], "no Capstan node"),
    ] {
        let out = capstan()
            .arg("--data-dir")
            .arg(&data)
            .args(&args)
            .current_dir(dir.path())
            .output()
            .expect("run capstan");
        assert!(!out.status.success(), "{args:?} exited 0");
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.contains(says), "{args:?}: {text}");
    }
    // A weak passphrase is refused before the cluster is asked anything.
    std::fs::write(dir.path().join("weak"), "short\n").expect("passphrase file");
    let out = capstan()
        .arg("--data-dir")
        .arg(&data)
        .args(["backup", "-o", "b.cbk", "--passphrase-file", "weak"])
        .current_dir(dir.path())
        .output()
        .expect("run capstan");
    assert!(!out.status.success());
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("at least 8 characters"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(!dir.path().join("b.cbk").exists());
}

#[test]
fn up_starts_a_one_node_cluster_that_status_reports() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().expect("utf-8 path").to_string();
    let swarm = free_port().to_string();
    let controller = free_port().to_string();
    let (_up, printed) = start_until(
        &[
            "--data-dir",
            &d,
            "up",
            "--swarm-port",
            &swarm,
            "--controller-port",
            &controller,
            "--registry-port",
            "0",
        ],
        // The last line (not "registry:", which ends the same way).
        "  try:",
        Duration::from_secs(60),
    );
    assert!(
        printed.contains(&format!("https://127.0.0.1:{swarm}")),
        "{printed}"
    );
    assert!(
        printed.contains(&format!("dashboard/API: https://127.0.0.1:{controller}")),
        "{printed}"
    );
    let pw =
        std::fs::read_to_string(dir.path().join("admin-password")).expect("admin password saved");
    assert!(pw.trim().len() >= 16);
    // The generated password is printed once, and it is the file's.
    assert!(printed.contains(pw.trim()), "{printed}");
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("admin-password"))
            .expect("password file")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
    let s = status_json(dir.path());
    assert_eq!(s["state"], "leader", "{s}");
    assert_eq!(s["leader_id"], s["node_id"]);
    assert_eq!(s["members"].as_array().map(Vec::len), Some(1));
    assert_eq!(s["members"][0]["reachable"], true);
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("pki/node.key"))
            .expect("node key")
            .permissions(),
    );
    assert_eq!(mode & 0o777, 0o600);
}

#[test]
fn install_validates_its_input_and_writes_nothing_on_error() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().join("node");
    let d = d.to_str().expect("utf-8 path");
    let cases: &[(&[&str], &str)] = &[
        (
            &[
                "--admin-username",
                "admin",
                "--admin-password",
                "short",
                "--host-address",
                "127.0.0.1",
            ],
            "at least 8",
        ),
        (
            &[
                "--admin-username",
                "bad name",
                "--admin-password",
                "long enough",
                "--host-address",
                "127.0.0.1",
            ],
            "username",
        ),
        (
            &[
                "--admin-username",
                "admin",
                "--admin-password",
                "long enough",
                "--host-address",
                "not a host",
            ],
            "--host-address",
        ),
        (
            &[
                "--admin-username",
                "admin",
                "--admin-password",
                "long enough",
                "--host-address",
                "127.0.0.1",
                "--swarm-port",
                "443",
            ],
            "both 443",
        ),
        (
            &["--admin-username", "admin", "--host-address", "127.0.0.1"],
            "--admin-password",
        ),
        (
            &[
                "--admin-username",
                "admin",
                "--admin-password",
                "long enough",
                "--host-address",
                "127.0.0.1",
                "--cert-ttl",
                "9x",
            ],
            "--cert-ttl",
        ),
    ];
    for (args, expected) in cases {
        let out = capstan()
            .args(["--data-dir", d, "install", "--init-only"])
            .args(*args)
            .output()
            .expect("run capstan install");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{args:?} was accepted");
        assert!(
            err.contains(expected),
            "{args:?}: expected {expected:?} in {err}"
        );
        assert!(
            !Path::new(d).join("node.toml").exists(),
            "{args:?} left a node.toml"
        );
    }
}

fn install_and_write(dir: &Path) {
    let d = dir.to_str().expect("utf-8 path");
    let out = capstan()
        .args([
            "--data-dir",
            d,
            "install",
            "--init-only",
            "--admin-username",
            "admin",
        ])
        .args([
            "--admin-password",
            "long enough",
            "--host-address",
            "127.0.0.1",
        ])
        .args([
            "--listen-address",
            "127.0.0.1",
            "--swarm-port",
            &free_port().to_string(),
        ])
        .output()
        .expect("install");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let (manager, _) = start_until(
        &["--data-dir", d, "manager"],
        "is running",
        Duration::from_secs(60),
    );
    let put = capstan()
        .args(["--data-dir", d, "kv", "put", "precious", "data"])
        .output()
        .expect("kv put");
    assert!(
        put.status.success(),
        "{}",
        String::from_utf8_lossy(&put.stderr)
    );
    drop(manager);
}

fn start_fails_naming(dir: &Path, what: &str) {
    let out = capstan()
        .args(["--data-dir", dir.to_str().expect("utf-8 path"), "manager"])
        .stdout(Stdio::null())
        .output()
        .expect("run manager");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "manager started on a {what} store");
    assert!(
        err.contains(&dir.join("raft").display().to_string()),
        "{what}: error does not name the path: {err}"
    );
}

#[test]
fn a_corrupted_or_emptied_store_is_refused_not_served_empty() {
    // Garbled: every byte of the sled files overwritten.
    let garbled = tempfile::tempdir().expect("temp dir");
    install_and_write(garbled.path());
    for entry in walk(&garbled.path().join("raft")) {
        let len = std::fs::metadata(&entry).map(|m| m.len()).unwrap_or(0);
        std::fs::write(&entry, vec![0xA5u8; len as usize]).expect("garble");
    }
    start_fails_naming(garbled.path(), "garbled");

    // Truncated: sled files cut to a few bytes.
    let truncated = tempfile::tempdir().expect("temp dir");
    install_and_write(truncated.path());
    for entry in walk(&truncated.path().join("raft")) {
        let f = std::fs::OpenOptions::new()
            .write(true)
            .open(&entry)
            .expect("open");
        f.set_len(7).expect("truncate");
    }
    start_fails_naming(truncated.path(), "truncated");

    // Emptied: the store's files removed but the directory kept.
    let emptied = tempfile::tempdir().expect("temp dir");
    install_and_write(emptied.path());
    let raft = emptied.path().join("raft");
    for entry in std::fs::read_dir(&raft).expect("raft dir") {
        let p = entry.expect("entry").path();
        if p.file_name().and_then(|n| n.to_str()) == Some("STORE") {
            continue;
        }
        if p.is_dir() {
            std::fs::remove_dir_all(&p).expect("remove");
        } else {
            std::fs::remove_file(&p).expect("remove");
        }
    }
    start_fails_naming(emptied.path(), "emptied");
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir") {
        let p = entry.expect("entry").path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else if p.file_name().and_then(|n| n.to_str()) != Some("STORE") {
            out.push(p);
        }
    }
    out
}

/// Runs `capstan <args>` on a pseudo-terminal (util-linux `script`),
/// typing `input`, as an operator at a console would.
fn on_a_terminal(args: &[&str], input: &str) -> std::process::Output {
    use std::io::Write;
    let command = std::iter::once(env!("CARGO_BIN_EXE_capstan"))
        .chain(args.iter().copied())
        .map(|a| format!("'{a}'"))
        .collect::<Vec<_>>()
        .join(" ");
    let mut child = Command::new("script")
        .args(["-qec", &command, "/dev/null"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("util-linux `script` runs");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .expect("type the answers");
    child.wait_with_output().expect("script finishes")
}

#[test]
fn interactive_install_asks_for_admin_and_aliases() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().expect("utf-8 path");
    let port = free_port().to_string();
    let base = [
        "--data-dir",
        d,
        "install",
        "--interactive",
        "--init-only",
        "--host-address",
        "127.0.0.1",
        "--swarm-port",
        &port,
    ];

    let out = on_a_terminal(&base, "admin\nfirst password\nsecond password\n");
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(printed.contains("differ"), "{printed}");
    assert!(
        !dir.path().join("node.toml").exists(),
        "mismatched passwords installed a node"
    );

    let out = on_a_terminal(
        &base,
        "admin\nlong enough pw\nlong enough pw\nmaster.docker-dca.example, lab-alias\n",
    );
    let printed = String::from_utf8_lossy(&out.stdout);
    assert!(
        printed.contains("Admin password:") && printed.contains("prepared in"),
        "{printed}"
    );
    let config = std::fs::read_to_string(dir.path().join("node.toml")).expect("node.toml written");
    assert!(
        config.contains("master.docker-dca.example") && config.contains("lab-alias"),
        "{config}"
    );
    let pem = std::fs::read_to_string(dir.path().join("pki/node.crt")).expect("node certificate");
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der =
        base64::Engine::decode(&base64::engine::general_purpose::STANDARD, body).expect("PEM body");
    for san in [
        &b"master.docker-dca.example"[..],
        b"lab-alias",
        b"capstan-manager",
    ] {
        assert!(
            der.windows(san.len()).any(|w| w == san),
            "certificate lacks SAN {}",
            String::from_utf8_lossy(san)
        );
    }
}

#[tokio::test]
async fn the_admin_password_is_stored_only_as_an_argon2_hash() {
    let dir = tempfile::tempdir().expect("temp dir");
    let d = dir.path().to_str().expect("utf-8 path").to_string();
    let swarm = free_port().to_string();
    let (_up, _) = start_until(
        &[
            "--data-dir",
            &d,
            "up",
            "--swarm-port",
            &swarm,
            "--registry-port",
            "0",
        ],
        "  try:",
        Duration::from_secs(60),
    );
    let password =
        std::fs::read_to_string(dir.path().join("admin-password")).expect("password file");
    let mut client = capstan_manager::client::connect(&capstan_manager::DataDir::new(&d), None)
        .await
        .expect("connect to the local manager");
    let admin = client
        .read(capstan_proto::v1::ReadRequest {
            table: "users".into(),
            id: "admin".into(),
            consistency: capstan_proto::v1::Consistency::Linearizable.into(),
        })
        .await
        .expect("read the admin record")
        .into_inner()
        .object
        .expect("the admin exists");
    let record = String::from_utf8(admin.value).expect("JSON record");
    assert!(record.contains("$argon2id$"), "{record}");
    assert!(
        !record.contains(password.trim()),
        "the password itself is stored"
    );
    assert!(record.contains("\"admin\":true"), "{record}");
}
