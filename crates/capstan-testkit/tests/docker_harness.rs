//! The harness against the real docker engine: containers, failures,
//! partitions, and cleanup that leaves nothing behind.
//!
//! Needs a running docker engine and busybox-static (scripts/test.sh installs
//! it); no image is pulled.

use std::net::IpAddr;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use capstan_testkit::{wait_until, ContainerSpec, Error, Harness, RunId, TestImage};

const WAIT: Duration = Duration::from_secs(20);
const TICK: Duration = Duration::from_millis(100);

fn docker(args: &[&str]) -> String {
    let output = Command::new("docker")
        .args(args)
        .output()
        .expect("docker CLI runs");
    assert!(
        output.status.success(),
        "docker {}: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).trim().to_owned()
}

/// Everything docker still has with this run's label, one line per object.
fn leftovers(run: &RunId) -> Vec<String> {
    let filter = run.filter();
    let mut found = Vec::new();
    for (kind, args) in [
        ("container", vec!["ps", "-a", "-q", "--filter", &filter]),
        ("network", vec!["network", "ls", "-q", "--filter", &filter]),
        ("volume", vec!["volume", "ls", "-q", "--filter", &filter]),
    ] {
        for id in docker(&args).lines().filter(|l| !l.trim().is_empty()) {
            found.push(format!("{kind} {id}"));
        }
    }
    found
}

fn in_subnet(ip: IpAddr, subnet: &str) -> bool {
    let (base, bits) = subnet.split_once('/').expect("CIDR subnet");
    let (IpAddr::V4(ip), Ok(IpAddr::V4(base)), Ok(bits)) =
        (ip, base.parse::<IpAddr>(), bits.parse::<u32>())
    else {
        return false;
    };
    let mask = u32::MAX.checked_shl(32 - bits).unwrap_or(0);
    u32::from(ip) & mask == u32::from(base) & mask
}

#[tokio::test]
async fn a_container_can_be_crashed_frozen_partitioned_and_restarted() {
    let image = TestImage::busybox_only().expect("busybox image");
    let harness = Harness::new().expect("docker is available");
    let run = harness.run_id().clone();
    let net = harness.network("lab").expect("network");

    let node = harness
        .run(
            ContainerSpec::new("node01", image.tag())
                .cmd(["sleep", "300"])
                .network(&net),
        )
        .expect("node01 starts");
    assert_eq!(node.exec_ok(&["echo", "hi"]).expect("exec"), "hi\n");
    assert_eq!(node.exec_ok(&["hostname"]).expect("hostname"), "node01\n");
    let ip = node.ip(&net).expect("address on the lab network");
    assert!(in_subnet(ip, &net.subnet), "{ip} not in {}", net.subnet);
    let failed = node.exec(&["false"]).expect("exec runs");
    assert_eq!(failed.code, Some(1));

    node.pause().expect("pause");
    assert_eq!(node.status().expect("status"), "paused");
    node.unpause().expect("unpause");
    assert_eq!(node.status().expect("status"), "running");

    node.disconnect(&net).expect("disconnect");
    assert!(matches!(node.ip(&net), Err(Error::NotOnNetwork { .. })));
    node.connect(&net).expect("connect");
    let ip = node.ip(&net).expect("address after reconnecting");
    assert!(in_subnet(ip, &net.subnet));

    node.kill().expect("kill");
    wait_until(WAIT, TICK, || Ok(!node.is_running()?))
        .await
        .expect("a killed container stops");
    node.start().expect("start after a crash");
    assert!(node.is_running().expect("state"));
    node.restart().expect("restart");
    assert!(node.is_running().expect("state"));
    node.stop().expect("stop");
    assert_eq!(node.status().expect("status"), "exited");

    drop(harness);
    assert_eq!(leftovers(&run), Vec::<String>::new());
}

#[tokio::test]
async fn peers_reach_each_other_by_host_name_until_partitioned() {
    let image = TestImage::busybox_only().expect("busybox image");
    let harness = Harness::new().expect("docker is available");
    let net = harness.network("lab").expect("network");
    let web = harness
        .run(
            ContainerSpec::new("web", image.workload())
                .cmd(["httpd", "-f", "-p", "8080", "-h", "/data"])
                .network(&net),
        )
        .expect("web starts");
    web.exec_ok(&["sh", "-c", "echo capstan > /data/index.html"])
        .expect("write the page");
    let client = harness
        .run(
            ContainerSpec::new("client", image.workload())
                .cmd(["sleep", "300"])
                .network(&net),
        )
        .expect("client starts");
    // busybox 1.35's `wget -T` segfaults: bound it with `timeout` instead.
    let fetch = || client.exec(&["timeout", "3", "wget", "-q", "-O", "-", "http://web:8080/"]);

    wait_until(WAIT, TICK, || Ok(fetch()?.success()))
        .await
        .expect("web answers by host name");
    assert_eq!(fetch().expect("fetch").stdout, "capstan\n");

    web.disconnect(&net).expect("partition web");
    assert!(!fetch().expect("fetch runs").success());
    web.connect(&net).expect("heal");
    wait_until(WAIT, TICK, || Ok(fetch()?.success()))
        .await
        .expect("web answers again after the partition heals");

    let logs = web.logs().expect("logs");
    assert!(logs.is_empty() || !logs.contains("panic"), "{logs}");
    let copied = tempfile::tempdir().expect("temp dir");
    let target = copied.path().join("index.html");
    web.cp_from("/data/index.html", &target).expect("docker cp");
    assert_eq!(
        std::fs::read_to_string(&target).expect("copied"),
        "capstan\n"
    );
}

#[test]
fn a_small_tmpfs_fills_up_and_named_volumes_are_shared_within_a_run() {
    let image = TestImage::busybox_only().expect("busybox image");
    let harness = Harness::new().expect("docker is available");
    let run = harness.run_id().clone();
    let writer = harness
        .run(
            ContainerSpec::new("writer", image.tag())
                .cmd(["sleep", "300"])
                .tmpfs("/small", "1m")
                .volume("shared", "/shared"),
        )
        .expect("writer starts");
    let full = writer
        .exec(&[
            "dd",
            "if=/dev/zero",
            "of=/small/fill",
            "bs=1024",
            "count=2048",
        ])
        .expect("dd runs");
    assert!(!full.success(), "2 MiB fit in a 1 MiB tmpfs");
    assert!(full.stderr.contains("No space left"), "{}", full.stderr);

    writer
        .exec_ok(&["sh", "-c", "echo kept > /shared/state"])
        .expect("write to the volume");
    let reader = harness
        .run(
            ContainerSpec::new("reader", image.tag())
                .cmd(["cat", "/shared/state"])
                .volume("shared", "/shared"),
        )
        .expect("reader starts");
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(reader.logs().expect("logs"), "kept\n");
    let volume = harness.volume_name("shared");
    assert!(docker(&["volume", "ls", "-q", "--filter", &run.filter()]).contains(&volume));

    drop(harness);
    assert_eq!(leftovers(&run), Vec::<String>::new());
}

#[test]
fn dropping_the_harness_during_a_panic_still_removes_everything() {
    let image = TestImage::busybox_only().expect("busybox image");
    let mut run = None;
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let harness = Harness::new().expect("docker is available");
        run = Some(harness.run_id().clone());
        let net = harness.network("doomed").expect("network");
        harness
            .run(
                ContainerSpec::new("doomed", image.tag())
                    .cmd(["sleep", "300"])
                    .volume("data", "/data")
                    .network(&net),
            )
            .expect("container starts");
        panic!("the test failed");
    }));
    assert!(outcome.is_err());
    let run = run.expect("the harness was made");
    assert_eq!(leftovers(&run), Vec::<String>::new());
}

#[test]
fn a_new_harness_removes_crashed_runs_and_nothing_else() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .as_secs();
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname").expect("host name");
    let dead_pid = {
        let mut child = Command::new("true").spawn().expect("spawn true");
        let pid = child.id();
        child.wait().expect("wait");
        pid
    };
    let suffix = format!("{}-{:08x}", std::process::id(), rand_suffix());
    let make = |name: &str, run: &str, owner: &str, pid: u32, created: u64| {
        docker(&[
            "network",
            "create",
            "--label",
            &format!("capstan.test={run}"),
            "--label",
            &format!("capstan.test.owner={owner}"),
            "--label",
            &format!("capstan.test.pid={pid}"),
            "--label",
            &format!("capstan.test.host={}", host.trim()),
            "--label",
            &format!("capstan.test.created={created}"),
            name,
        ]);
    };
    let crashed = format!("capstan-test-crashed-{suffix}");
    let live = format!("capstan-test-live-{suffix}");
    let young = format!("capstan-test-young-{suffix}");
    let foreign = format!("someone-else-{suffix}");
    make(&crashed, &crashed, "capstan-testkit", dead_pid, now - 600);
    make(
        &live,
        &live,
        "capstan-testkit",
        std::process::id(),
        now - 600,
    );
    make(&young, &young, "capstan-testkit", dead_pid, now - 5);
    make(&foreign, &foreign, "someone-else", dead_pid, now - 600);

    let harness = Harness::new().expect("docker is available");
    let exists = |name: &str| {
        Command::new("docker")
            .args(["network", "inspect", name])
            .output()
            .expect("docker runs")
            .status
            .success()
    };
    let states = [
        exists(&crashed),
        exists(&live),
        exists(&young),
        exists(&foreign),
    ];
    for name in [&crashed, &live, &young, &foreign] {
        let _ = Command::new("docker")
            .args(["network", "rm", name])
            .output();
    }
    drop(harness);
    assert_eq!(
        states,
        [false, true, true, true],
        "crashed, live, young, foreign network exists after Harness::new"
    );
}

#[test]
fn the_node_image_carries_the_given_static_binary_as_capstan() {
    // Busybox stands in for a static capstan binary.
    let image = TestImage::ensure(Path::new(capstan_testkit::DEFAULT_BUSYBOX))
        .expect("node image from a static binary");
    assert!(
        image.tag().starts_with("capstan-test/node:"),
        "{}",
        image.tag()
    );
    assert_eq!(
        TestImage::ensure(Path::new(capstan_testkit::DEFAULT_BUSYBOX)).expect("cached"),
        image
    );
    let harness = Harness::new().expect("docker is available");
    let node = harness
        .run(ContainerSpec::new("node", image.tag()).cmd(["sleep", "300"]))
        .expect("node starts");
    node.exec_ok(&["test", "-x", "/usr/local/bin/capstan"])
        .expect("capstan is installed");
    assert_eq!(
        node.exec_ok(&["sh", "-c", "echo $PATH; id -un; stat -c %a /tmp"])
            .expect("environment"),
        "/usr/local/bin:/bin\nroot\n1777\n"
    );
}

#[test]
fn a_dynamic_binary_is_refused_with_the_build_recipe() {
    // Under scripts/test.sh this test binary is itself static; Debian's ls
    // never is.
    let dynamic = if cfg!(target_feature = "crt-static") {
        Path::new("/bin/ls").to_owned()
    } else {
        std::env::current_exe().expect("test binary")
    };
    let error = TestImage::ensure(&dynamic).expect_err("dynamic binaries are refused");
    let message = error.to_string();
    assert!(message.contains("not a static executable"), "{message}");
    assert!(message.contains("crt-static"), "{message}");
}

fn rand_suffix() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock")
        .subsec_nanos()
}
