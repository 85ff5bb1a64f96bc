//! The harness a test owns: its run id, networks, volumes and containers,
//! all removed when it is dropped, even when the test panicked.

use std::sync::{Mutex, MutexGuard};

use crate::container::{Container, ContainerSpec};
use crate::docker::docker;
use crate::error::Result;
use crate::leftovers::{remove_crashed_runs, remove_matching, CRASHED_RUN_MIN_AGE};
use crate::network::TestNetwork;
use crate::run_id::{RunId, RUN_LABEL};

/// Lines of each container's log printed when a test fails.
const LOG_LINES_ON_FAILURE: usize = 200;

/// The docker resources of one test.
///
/// Everything it creates carries the run's labels; dropping it removes every
/// container, network and volume with this run's label (and with any label
/// given to [`Harness::sweep_label`]). When the drop happens during a panic
/// the last lines of every container's log are printed first, so a failed
/// test shows what its nodes said. Set `CAPSTAN_TEST_KEEP=1` to keep the
/// resources for a post-mortem; the next run removes them once stale.
#[derive(Debug)]
pub struct Harness {
    run: RunId,
    state: Mutex<State>,
}

#[derive(Debug, Default)]
struct State {
    networks: Vec<TestNetwork>,
    containers: Vec<Container>,
    sweep_filters: Vec<String>,
}

impl Harness {
    /// Checks that the docker engine answers, removes what crashed earlier
    /// testkit runs left behind, and starts a new run.
    pub fn new() -> Result<Harness> {
        docker(["version", "--format", "{{.Server.Version}}"])?;
        let run = RunId::new();
        for problem in remove_crashed_runs(run.as_str(), CRASHED_RUN_MIN_AGE) {
            eprintln!("capstan-testkit: could not remove a crashed run's leftovers: {problem}");
        }
        Ok(Harness {
            run,
            state: Mutex::new(State::default()),
        })
    }

    /// This run's id, the value of the `capstan.test` label.
    pub fn run_id(&self) -> &RunId {
        &self.run
    }

    /// Creates a private bridge network for this run.
    pub fn network(&self, name_hint: &str) -> Result<TestNetwork> {
        let network = TestNetwork::create(&self.run, name_hint)?;
        self.state().networks.push(network.clone());
        Ok(network)
    }

    /// The docker name of the run-scoped volume `hint`, as
    /// [`ContainerSpec::volumes`] names it: two containers of one run that
    /// mount `"data"` share it, other runs never see it.
    pub fn volume_name(&self, hint: &str) -> String {
        self.run.scoped_name(&format!("vol-{hint}"))
    }

    /// Starts a container (`docker run -d`) and returns its handle.
    pub fn run(&self, spec: ContainerSpec) -> Result<Container> {
        let name = self.run.scoped_name(&spec.name_hint);
        let hostname = spec.effective_hostname();
        let mut args: Vec<String> = vec![
            "run".into(),
            "--detach".into(),
            "--name".into(),
            name.clone(),
            "--hostname".into(),
            hostname.clone(),
        ];
        args.extend(self.run.label_args());
        if spec.init {
            args.push("--init".into());
        }
        if let Some(network) = &spec.network {
            args.extend(["--network".into(), network.clone()]);
            args.extend(["--network-alias".into(), hostname.clone()]);
        }
        if let Some((path, size)) = &spec.tmpfs {
            args.extend(["--tmpfs".into(), format!("{path}:size={size}")]);
        }
        for (source, target) in &spec.volumes {
            let source = if source.starts_with('/') {
                source.clone()
            } else {
                self.create_volume(source)?
            };
            args.extend(["--volume".into(), format!("{source}:{target}")]);
        }
        for (key, value) in &spec.env {
            args.extend(["--env".into(), format!("{key}={value}")]);
        }
        args.extend(spec.extra_args.iter().cloned());
        args.push(spec.image.clone());
        args.extend(spec.cmd.iter().cloned());

        let container = Container { name, hostname };
        // Recorded before starting: a container docker created but could not
        // start still has logs worth printing.
        self.state().containers.push(container.clone());
        docker(&args)?;
        Ok(container)
    }

    /// Also removes, on drop, everything carrying `label` (`key=value`):
    /// for containers the product under test starts itself, such as the
    /// workloads of an agent whose node id is unique to this test.
    pub fn sweep_label(&self, label: impl Into<String>) {
        self.state()
            .sweep_filters
            .push(format!("label={}", label.into()));
    }

    /// The containers started so far.
    pub fn containers(&self) -> Vec<Container> {
        self.state().containers.clone()
    }

    /// The networks created so far.
    pub fn networks(&self) -> Vec<TestNetwork> {
        self.state().networks.clone()
    }

    fn create_volume(&self, hint: &str) -> Result<String> {
        let name = self.volume_name(hint);
        let mut args = vec!["volume".to_owned(), "create".to_owned()];
        args.extend(self.run.label_args());
        args.push(name.clone());
        docker(&args)?;
        Ok(name)
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // A panic while holding the lock leaves nothing half-updated.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn print_logs(&self) {
        for container in self.containers() {
            eprintln!(
                "----- last {LOG_LINES_ON_FAILURE} log lines of {} ({}) -----",
                container.name, container.hostname
            );
            match container.logs_tail(Some(LOG_LINES_ON_FAILURE)) {
                Ok(logs) => eprintln!("{}", logs.trim_end()),
                Err(e) => eprintln!("(no logs: {e})"),
            }
        }
    }
}

impl Drop for Harness {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.print_logs();
        }
        if std::env::var_os("CAPSTAN_TEST_KEEP").is_some_and(|v| v == "1") {
            eprintln!(
                "capstan-testkit: CAPSTAN_TEST_KEEP=1, keeping everything labelled {RUN_LABEL}={}",
                self.run
            );
            return;
        }
        // The run's own containers first, so that no agent among them can
        // start another workload; then what the product made (swept labels);
        // then the run's networks and volumes, which those may have used.
        let mut filters = vec![self.run.filter()];
        filters.extend(std::mem::take(&mut self.state().sweep_filters));
        filters.push(self.run.filter());
        for filter in filters {
            for problem in remove_matching(&filter) {
                eprintln!("capstan-testkit: cleanup of {filter} incomplete: {problem}");
            }
        }
    }
}
