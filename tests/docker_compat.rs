//! Compatibility against the real thing: the same `docker` CLI commands run
//! against this machine's Docker engine in swarm mode and against Capstan,
//! and the JSON they print (`inspect`, `ls --format '{{json .}}'`) is
//! compared field by field — names and JSON types, not ids, times or
//! values. A field Swarm has and Capstan lacks fails the test unless the
//! allow-list below names it with the reason.

#[path = "support/docker.rs"]
mod docker;
#[path = "support/gateway.rs"]
mod gateway;

use std::collections::BTreeSet;
use std::process::Command;

use capstan_testkit::{Harness, TestImage};
use docker::Docker;
use gateway::Gateway;
use serde_json::Value;

/// Fields Swarm has that Capstan does not, each with the reason. A path is
/// `<what>` then the field path; `[]` stands for any array element and
/// `*` for any key of a map.
const ALLOWED_MISSING: &[(&str, &str)] = &[
    (
        "service inspect[].Endpoint.VirtualIPs",
        "Capstan allocates no virtual IPs: a service is reached by its tasks' \
         names on its networks and by its published ports",
    ),
    (
        "network inspect[].Peers",
        "Capstan's networks are made on each node by its agent; there is no \
         overlay control plane whose peers could be listed",
    ),
];

/// Maps whose keys are data (label names, option names), not fields: only
/// their type is compared.
const OPAQUE_MAPS: &[&str] = &[
    "Labels",
    "Options",
    "Containers",
    "DriverOpts",
    "Ports",
    "NetworkSettings.Networks",
];

/// The local engine, left in swarm mode only for the test's duration; the
/// `docker_gwbridge` network that `swarm init` makes goes with it.
struct LocalSwarm {
    remove_gwbridge: bool,
}

impl LocalSwarm {
    fn init() -> LocalSwarm {
        let state = host_docker(&["info", "--format", "{{.Swarm.LocalNodeState}}"]);
        assert_eq!(
            state.trim(),
            "inactive",
            "the local Docker engine must not be in swarm mode when the test starts"
        );
        let had_gwbridge = Command::new("docker")
            .args(["network", "inspect", "docker_gwbridge"])
            .output()
            .is_ok_and(|o| o.status.success());
        let swarm = LocalSwarm {
            remove_gwbridge: !had_gwbridge,
        };
        host_docker(&["swarm", "init", "--advertise-addr", "127.0.0.1"]);
        swarm
    }
}

impl Drop for LocalSwarm {
    fn drop(&mut self) {
        let _ = Command::new("docker")
            .args(["swarm", "leave", "--force"])
            .output();
        if self.remove_gwbridge {
            let _ = Command::new("docker")
                .args(["network", "rm", "docker_gwbridge"])
                .output();
        }
    }
}

/// `docker` on this machine's engine (no DOCKER_HOST).
fn host_docker(args: &[&str]) -> String {
    let out = Command::new("docker")
        .env_remove("DOCKER_HOST")
        .env_remove("DOCKER_TLS_VERIFY")
        .env_remove("DOCKER_CERT_PATH")
        .args(args)
        .output()
        .expect("run docker");
    assert!(
        out.status.success(),
        "docker {} (local engine) failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn type_name(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Field paths of `swarm` missing from `capstan` or of another type.
fn compare(path: &str, swarm: &Value, capstan: &Value, problems: &mut BTreeSet<String>) {
    match (swarm, capstan) {
        (Value::Null, _) | (_, Value::Null) => {}
        (Value::Object(s), Value::Object(c)) => {
            let field = path.rsplit(['.', ' ']).next().unwrap_or("");
            if OPAQUE_MAPS.iter().any(|m| path.ends_with(m) || *m == field) {
                return;
            }
            for (k, sv) in s {
                let p = format!("{path}.{k}");
                match c.get(k) {
                    Some(cv) => compare(&p, sv, cv, problems),
                    None => {
                        problems.insert(format!("{p}: missing"));
                    }
                }
            }
        }
        (Value::Array(s), Value::Array(c)) => {
            if let (Some(sv), Some(cv)) = (s.first(), c.first()) {
                compare(&format!("{path}[]"), sv, cv, problems);
            }
        }
        (s, c) if type_name(s) != type_name(c) => {
            problems.insert(format!(
                "{path}: Swarm has a {}, Capstan a {}",
                type_name(s),
                type_name(c)
            ));
        }
        _ => {}
    }
}

fn parse_lines(what: &str, text: &str) -> Value {
    let items: Vec<Value> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{what}: {e}: {l}")))
        .collect();
    Value::Array(items)
}

fn parse(what: &str, text: &str) -> Value {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {text}"))
}

/// The objects one side of the comparison makes.
#[derive(Clone)]
struct Names {
    svc: String,
    ctr: String,
    sec: String,
    cfg: String,
    net: String,
    vol: String,
}

impl Names {
    fn new(tag: &str, side: &str) -> Names {
        let n = |what: &str| format!("{tag}-{side}-{what}");
        Names {
            svc: n("web"),
            ctr: n("ctr"),
            sec: n("secret"),
            cfg: n("config"),
            net: n("net"),
            vol: n("vol"),
        }
    }
}

/// Removes what the test made on the local engine, even when it fails.
struct Cleanup(Vec<Names>);

impl Drop for Cleanup {
    fn drop(&mut self) {
        for n in &self.0 {
            for args in [
                vec!["service", "rm", n.svc.as_str()],
                vec!["rm", "-f", &n.ctr],
                vec!["secret", "rm", &n.sec],
                vec!["config", "rm", &n.cfg],
                vec!["volume", "rm", "-f", &n.vol],
            ] {
                let _ = Command::new("docker").args(&args).output();
            }
            // Leaving the swarm tears its networks down in the background.
            for _ in 0..40 {
                let _ = Command::new("docker")
                    .args(["network", "rm", &n.net])
                    .output();
                let listed = Command::new("docker")
                    .args([
                        "network",
                        "ls",
                        "-q",
                        "--filter",
                        &format!("name=^{}$", n.net),
                    ])
                    .output()
                    .map(|o| !o.stdout.trim_ascii().is_empty())
                    .unwrap_or(false);
                if !listed {
                    break;
                }
                std::thread::sleep(std::time::Duration::from_millis(250));
            }
        }
    }
}

#[test]
fn capstan_answers_like_docker_swarm() {
    let harness = Harness::new().expect("test harness");
    let image = TestImage::busybox_only().expect("busybox image");
    let img = image.tag();
    let gw = Gateway::start_with_agent();
    harness.sweep_label(format!("com.capstan.node.id={}", gw.node_id()));
    harness.sweep_label(format!("com.capstan.standalone.node={}", gw.node_id()));
    let capstan = Docker::with_token(&gw, &gw.admin);
    let tag = format!("compat{}", std::process::id());
    // Capstan's agent drives this same engine, so each side gets its own
    // names: `-s` for Swarm, `-c` for Capstan.
    let swarm_names = Names::new(&tag, "s");
    let capstan_names = Names::new(&tag, "c");
    // Dropped after the swarm is left (last made, first dropped), when what
    // is left of Swarm's objects is plain local objects.
    let _cleanup = Cleanup(vec![swarm_names.clone(), capstan_names.clone()]);
    let _swarm = LocalSwarm::init();

    // The same objects on both sides, made by the same CLI commands.
    for (n, run) in [
        (
            &swarm_names,
            &(|a: &[&str]| host_docker(a)) as &dyn Fn(&[&str]) -> String,
        ),
        (&capstan_names, &|a: &[&str]| capstan.ok(a)),
    ] {
        run(&[
            "network", "create", "--driver", "overlay", "--label", "t=1", &n.net,
        ]);
        run(&[
            "service",
            "create",
            "--detach",
            "--name",
            &n.svc,
            "--replicas",
            "1",
            "--label",
            "t=1",
            "--env",
            "A=1",
            "--network",
            &n.net,
            img,
            "sleep",
            "300",
        ]);
        run(&[
            "config",
            "create",
            "--label",
            "t=1",
            &n.cfg,
            "/etc/hostname",
        ]);
        run(&[
            "secret",
            "create",
            "--label",
            "t=1",
            &n.sec,
            "/etc/hostname",
        ]);
        run(&["volume", "create", "--label", "t=1", &n.vol]);
        run(&[
            "run", "-d", "--name", &n.ctr, "--label", "t=1", img, "sleep", "300",
        ]);
    }

    // What to compare: (name, arguments, one JSON document or JSON lines).
    let queries = |n: &Names| -> Vec<(&'static str, Vec<String>, bool)> {
        let v = |a: &[&str]| a.iter().map(|s| s.to_string()).collect::<Vec<_>>();
        vec![
            ("service inspect", v(&["service", "inspect", &n.svc]), false),
            (
                "service ls",
                v(&[
                    "service",
                    "ls",
                    "--filter",
                    &format!("name={}", n.svc),
                    "--format",
                    "{{json .}}",
                ]),
                true,
            ),
            (
                "service ps",
                v(&["service", "ps", &n.svc, "--format", "{{json .}}"]),
                true,
            ),
            ("node inspect", v(&["node", "inspect", "self"]), false),
            (
                "node ls",
                v(&["node", "ls", "--format", "{{json .}}"]),
                true,
            ),
            ("secret inspect", v(&["secret", "inspect", &n.sec]), false),
            (
                "secret ls",
                v(&[
                    "secret",
                    "ls",
                    "--filter",
                    &format!("name={}", n.sec),
                    "--format",
                    "{{json .}}",
                ]),
                true,
            ),
            ("config inspect", v(&["config", "inspect", &n.cfg]), false),
            (
                "config ls",
                v(&[
                    "config",
                    "ls",
                    "--filter",
                    &format!("name={}", n.cfg),
                    "--format",
                    "{{json .}}",
                ]),
                true,
            ),
            ("network inspect", v(&["network", "inspect", &n.net]), false),
            (
                "network ls",
                v(&[
                    "network",
                    "ls",
                    "--filter",
                    &format!("name={}", n.net),
                    "--format",
                    "{{json .}}",
                ]),
                true,
            ),
            ("volume inspect", v(&["volume", "inspect", &n.vol]), false),
            (
                "volume ls",
                v(&[
                    "volume",
                    "ls",
                    "--filter",
                    &format!("name={}", n.vol),
                    "--format",
                    "{{json .}}",
                ]),
                true,
            ),
            (
                "container inspect",
                v(&["container", "inspect", &n.ctr]),
                false,
            ),
            (
                "container ls",
                v(&[
                    "container",
                    "ls",
                    "--filter",
                    &format!("name={}", n.ctr),
                    "--format",
                    "{{json .}}",
                ]),
                true,
            ),
            (
                "version",
                v(&["version", "--format", "{{json .Server}}"]),
                false,
            ),
        ]
    };
    let mut problems = BTreeSet::new();
    for ((what, s_args, lines), (_, c_args, _)) in queries(&swarm_names)
        .into_iter()
        .zip(queries(&capstan_names))
    {
        let s_args: Vec<&str> = s_args.iter().map(String::as_str).collect();
        let c_args: Vec<&str> = c_args.iter().map(String::as_str).collect();
        let s = host_docker(&s_args);
        let c = capstan.ok(&c_args);
        let (s, c) = if lines {
            (parse_lines(what, &s), parse_lines(what, &c))
        } else {
            (parse(what, &s), parse(what, &c))
        };
        assert!(
            !matches!(&s, Value::Array(a) if a.is_empty()),
            "{what}: Swarm printed nothing to compare"
        );
        assert!(
            !matches!(&c, Value::Array(a) if a.is_empty()),
            "{what}: Capstan printed nothing"
        );
        compare(what, &s, &c, &mut problems);
    }
    // Task inspect: the first task of the service on each side.
    let task_of = |ps: String| ps.lines().next().unwrap_or_default().trim().to_string();
    let s_task = task_of(host_docker(&["service", "ps", "-q", &swarm_names.svc]));
    let c_task = task_of(capstan.ok(&["service", "ps", "-q", &capstan_names.svc]));
    let s = parse(
        "task inspect",
        &host_docker(&["inspect", "--type", "task", &s_task]),
    );
    let c = parse(
        "task inspect",
        &capstan.ok(&["inspect", "--type", "task", &c_task]),
    );
    compare("task inspect", &s, &c, &mut problems);

    // Capstan's objects go through Capstan, so its own bookkeeping is
    // exercised too; the guard removes whatever is left on the engine.
    for args in [
        vec!["service", "rm", capstan_names.svc.as_str()],
        vec!["rm", "-f", &capstan_names.ctr],
        vec!["secret", "rm", &capstan_names.sec],
        vec!["config", "rm", &capstan_names.cfg],
        vec!["volume", "rm", &capstan_names.vol],
        vec!["network", "rm", &capstan_names.net],
    ] {
        capstan.ok(&args);
    }

    let allowed = |p: &str| ALLOWED_MISSING.iter().any(|(a, _)| p.starts_with(a));
    let unexplained: Vec<&String> = problems.iter().filter(|p| !allowed(p)).collect();
    assert!(
        unexplained.is_empty(),
        "Capstan's JSON differs from Docker Swarm's in {} place(s):\n{}",
        unexplained.len(),
        unexplained
            .iter()
            .map(|p| format!("  {p}"))
            .collect::<Vec<_>>()
            .join("\n")
    );
}
