//! The command line, as clap types.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};

/// Capstan: a cluster control plane for Docker hosts — managers, workers,
/// RBAC, identity, a registry and client bundles, in one binary.
#[derive(Parser, Debug)]
#[command(name = "capstan", version, propagate_version = true)]
pub struct Cli {
    /// Where this node keeps its state [default: /var/lib/capstan for root,
    /// else ~/.local/share/capstan].
    #[arg(long, global = true, env = "CAPSTAN_DATA_DIR")]
    pub data_dir: Option<PathBuf>,
    /// Config file (TOML; see deploy/config.example.toml) [default:
    /// /etc/capstan/config.toml when it exists]. Flags and CAPSTAN_*
    /// variables override it.
    #[arg(long, global = true, env = "CAPSTAN_CONFIG")]
    pub config: Option<PathBuf>,
    /// Log filter (tracing env-filter syntax), e.g. `info` or `capstan=debug`.
    #[arg(long, global = true, env = "CAPSTAN_LOG")]
    pub log_level: Option<String>,
    /// Log as JSON lines instead of text.
    #[arg(long, global = true)]
    pub log_json: bool,
    #[command(subcommand)]
    pub command: Command,
}

/// Every subcommand.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Start an all-in-one single-node cluster on this machine (installs on first run).
    Up(UpArgs),
    /// Install the first manager of a new cluster and start it.
    Install(InstallArgs),
    /// Join this machine to a cluster with a join token and start it.
    Join(JoinArgs),
    /// Run the installed manager of this node.
    Manager,
    /// Run the worker agent of this node.
    Agent(AgentArgs),
    /// Install or run the image registry on this node.
    Registry(RegistryArgs),
    /// Print or rotate join tokens.
    Token(TokenArgs),
    /// Manage nodes: ls, inspect, promote, demote, rm.
    #[command(subcommand)]
    Node(NodeCommand),
    /// Show Raft state: leader, term, commit index, members' reachability.
    Status(StatusArgs),
    /// Read and write cluster key/value metadata (maintenance and diagnostics).
    #[command(subcommand)]
    Kv(KvCommand),
    /// Back up the cluster online: the store at one Raft index, the CA and
    /// keys, sealed with a passphrase.
    Backup(BackupArgs),
    /// Make a one-manager cluster on this machine from a backup.
    Restore(RestoreArgs),
    /// Collect every node's recent logs and the cluster's state (secrets
    /// redacted) into one zip for support.
    SupportBundle(SupportBundleArgs),
    /// Check this node: certificates, disk, Docker, ports, managers, Raft
    /// and clock skew, each problem with what to do.
    Doctor(DoctorArgs),
    /// Cluster certificate authority operations.
    #[command(subcommand)]
    Ca(CaCommand),
    /// Run a built-in benchmark and print JSON figures.
    Bench(BenchArgs),
    /// Check this manager's tamper-evident audit log.
    #[command(subcommand)]
    Audit(AuditCommand),
}

/// `capstan audit`.
#[derive(Subcommand, Debug)]
pub enum AuditCommand {
    /// Verify the hash chain of the audit log; names the first entry that
    /// was changed, removed or reordered.
    Verify {
        /// The audit log file [default: audit/audit.jsonl in the data dir].
        #[arg(long)]
        file: Option<PathBuf>,
    },
}

/// Where a client command connects.
#[derive(Args, Debug, Clone)]
pub struct Target {
    /// A manager's swarm address `host:port` [default: this node's manager].
    #[arg(long)]
    pub host: Option<String>,
}

/// Ports and addresses shared by install and join. Unset ones come from the
/// config file, then the defaults shown.
#[derive(Args, Debug, Clone)]
pub struct NodeNet {
    /// The address other nodes reach this one at [default: what this host's name resolves to].
    #[arg(long, env = "CAPSTAN_HOST_ADDRESS")]
    pub host_address: Option<String>,
    /// Address the swarm port listens on [default: 0.0.0.0].
    #[arg(long, env = "CAPSTAN_LISTEN_ADDRESS")]
    pub listen_address: Option<String>,
    /// Extra subject alternative name for this node's certificates (repeatable).
    #[arg(long = "san")]
    pub sans: Vec<String>,
    /// Gateway port (dashboard, REST API, Docker API) [default: 443].
    #[arg(long, env = "CAPSTAN_CONTROLLER_PORT")]
    pub controller_port: Option<u16>,
    /// Cluster gRPC port (Raft, cluster API, joins) [default: 2377].
    #[arg(long, env = "CAPSTAN_SWARM_PORT")]
    pub swarm_port: Option<u16>,
    /// Kubernetes API port [default: 6443].
    #[arg(long, env = "CAPSTAN_KUBE_APISERVER_PORT")]
    pub kube_apiserver_port: Option<u16>,
}

/// `capstan up`.
#[derive(Args, Debug)]
pub struct UpArgs {
    /// Gateway port [default: 8443].
    #[arg(long)]
    pub controller_port: Option<u16>,
    /// Cluster gRPC port [default: 2377].
    #[arg(long)]
    pub swarm_port: Option<u16>,
    /// Kubernetes API port [default: 6443].
    #[arg(long)]
    pub kube_apiserver_port: Option<u16>,
    /// Admin username on first start.
    #[arg(long, default_value = "admin")]
    pub admin_username: String,
    /// Image registry port; 0 runs no registry [default: 5443].
    #[arg(long)]
    pub registry_port: Option<u16>,
    #[command(flatten)]
    pub engine_proxy: EngineProxyArg,
}

/// The engine proxy's port, shared by `up`, `join` and `agent`.
#[derive(Args, Debug, Clone)]
pub struct EngineProxyArg {
    /// Port of the agent's engine proxy, through which the managers reach
    /// this node's Docker engine (mutual TLS, managers only); 0 picks a free
    /// port [default: 12376].
    #[arg(long = "engine-proxy-port", env = "CAPSTAN_ENGINE_PROXY_PORT")]
    pub port: Option<u16>,
}

/// `capstan registry`: runs the installed registry of this node, or
/// installs one.
#[derive(Args, Debug)]
#[command(args_conflicts_with_subcommands = true)]
pub struct RegistryArgs {
    /// Install the registry on this (joined) node.
    #[command(subcommand)]
    pub command: Option<RegistryCommand>,
}

/// `capstan registry` subcommands.
#[derive(Subcommand, Debug)]
pub enum RegistryCommand {
    /// Register a registry on this node with the control plane and start it.
    Install(RegistryInstallArgs),
}

/// `capstan registry install`.
#[derive(Args, Debug)]
pub struct RegistryInstallArgs {
    /// The control plane's URL, e.g. https://master.docker-dca.example.
    #[arg(long)]
    pub ucp_url: String,
    /// The control plane's CA certificate (PEM text, or @file).
    #[arg(long)]
    pub ucp_ca: String,
    /// An admin's username.
    #[arg(long)]
    pub ucp_username: String,
    /// The admin's password.
    #[arg(long, env = "CAPSTAN_UCP_PASSWORD", hide_env_values = true)]
    pub ucp_password: Option<String>,
    /// A file holding the admin's password.
    #[arg(long)]
    pub ucp_password_file: Option<PathBuf>,
    /// The port the registry serves HTTPS on.
    #[arg(long, default_value_t = 443)]
    pub replica_port: u16,
    /// The address it listens on [default: the node's listen address].
    #[arg(long)]
    pub listen_address: Option<String>,
    /// The host name clients use [default: the node's host address].
    #[arg(long)]
    pub host: Option<String>,
    /// Register and write the settings, but do not start serving.
    #[arg(long)]
    pub init_only: bool,
}

/// `capstan agent`.
#[derive(Args, Debug)]
pub struct AgentArgs {
    #[command(flatten)]
    pub engine_proxy: EngineProxyArg,
}

/// `capstan install`.
#[derive(Args, Debug)]
pub struct InstallArgs {
    #[command(flatten)]
    pub net: NodeNet,
    /// Ask for the admin username, password and extra SANs.
    #[arg(long)]
    pub interactive: bool,
    /// First admin's username.
    #[arg(long)]
    pub admin_username: Option<String>,
    /// First admin's password (prefer --admin-password-file).
    #[arg(long, env = "CAPSTAN_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// File holding the first admin's password.
    #[arg(long, conflicts_with = "admin_password")]
    pub admin_password_file: Option<PathBuf>,
    /// Lifetime of node certificates, e.g. `90d`, `12h` [default: 90d].
    #[arg(long, env = "CAPSTAN_CERT_TTL")]
    pub cert_ttl: Option<String>,
    /// Only prepare the data directory; start it later with `capstan manager`.
    #[arg(long)]
    pub init_only: bool,
}

/// `capstan join`.
#[derive(Args, Debug)]
pub struct JoinArgs {
    /// The join token from `capstan token worker|manager`.
    #[arg(long, env = "CAPSTAN_JOIN_TOKEN", hide_env_values = true)]
    pub token: String,
    /// A manager's swarm address, `host:port`.
    pub manager: String,
    #[command(flatten)]
    pub net: NodeNet,
    /// Only join and prepare the data directory; start it later.
    #[arg(long)]
    pub init_only: bool,
    #[command(flatten)]
    pub engine_proxy: EngineProxyArg,
}

/// Where a backup's passphrase comes from: the file, else
/// `CAPSTAN_BACKUP_PASSPHRASE`, else a prompt on the terminal.
#[derive(Args, Debug, Clone)]
pub struct PassphraseArg {
    /// A file holding the passphrase (its first line).
    #[arg(long)]
    pub passphrase_file: Option<PathBuf>,
}

/// `capstan backup`.
#[derive(Args, Debug)]
pub struct BackupArgs {
    /// Where to write the backup; `-` is standard output.
    #[arg(long, short, default_value = "-")]
    pub output: PathBuf,
    #[command(flatten)]
    pub passphrase: PassphraseArg,
    #[command(flatten)]
    pub target: Target,
}

/// `capstan restore`.
#[derive(Args, Debug)]
pub struct RestoreArgs {
    /// The backup file (`-` reads standard input).
    #[arg(long)]
    pub from: PathBuf,
    #[command(flatten)]
    pub passphrase: PassphraseArg,
    /// Only open and check the backup, print its manifest, write nothing.
    #[arg(long)]
    pub check: bool,
    #[command(flatten)]
    pub net: NodeNet,
    /// Lifetime of node certificates, e.g. `90d` [default: 90d].
    #[arg(long, env = "CAPSTAN_CERT_TTL")]
    pub cert_ttl: Option<String>,
    /// Only prepare the data directory; start it later with `capstan manager`.
    #[arg(long)]
    pub init_only: bool,
}

/// `capstan doctor`.
#[derive(Args, Debug)]
pub struct DoctorArgs {
    /// Print the findings as JSON.
    #[arg(long)]
    pub json: bool,
}

/// `capstan support-bundle`.
#[derive(Args, Debug)]
pub struct SupportBundleArgs {
    /// Where to write the zip; `-` is standard output [default:
    /// capstan-support-<cluster>-<time>.zip in the current directory].
    #[arg(long, short)]
    pub output: Option<PathBuf>,
    #[command(flatten)]
    pub target: Target,
}

/// `capstan token`.
#[derive(Args, Debug)]
pub struct TokenArgs {
    /// Which token: `worker` or `manager`.
    pub role: String,
    /// Replace the token; the old one stops working at once.
    #[arg(long)]
    pub rotate: bool,
    /// Print only the token.
    #[arg(long, short)]
    pub quiet: bool,
    #[command(flatten)]
    pub target: Target,
}

/// `capstan node ...`.
#[derive(Subcommand, Debug)]
pub enum NodeCommand {
    /// List nodes.
    Ls {
        /// Print JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Show one node as JSON.
    Inspect {
        /// Node id, id prefix or hostname.
        node: String,
        #[command(flatten)]
        target: Target,
    },
    /// Make nodes voting managers.
    Promote {
        /// Node ids, id prefixes or hostnames.
        #[arg(required = true)]
        nodes: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Make managers workers (refused if quorum would be lost).
    Demote {
        /// Node ids, id prefixes or hostnames.
        #[arg(required = true)]
        nodes: Vec<String>,
        #[command(flatten)]
        target: Target,
    },
    /// Remove nodes from the cluster.
    Rm {
        /// Node ids, id prefixes or hostnames.
        #[arg(required = true)]
        nodes: Vec<String>,
        /// Remove even if the node still looks alive.
        #[arg(long, short)]
        force: bool,
        #[command(flatten)]
        target: Target,
    },
}

/// `capstan status`.
#[derive(Args, Debug)]
pub struct StatusArgs {
    /// Print JSON.
    #[arg(long)]
    pub json: bool,
    #[command(flatten)]
    pub target: Target,
}

/// `capstan kv ...`: the `kv` table of the replicated store.
#[derive(Subcommand, Debug)]
pub enum KvCommand {
    /// Print a value (linearizable unless --local).
    Get {
        /// Key.
        key: String,
        /// Read this manager's applied state without asking the leader.
        #[arg(long)]
        local: bool,
        #[command(flatten)]
        target: Target,
    },
    /// Set a value.
    Put {
        /// Key.
        key: String,
        /// Value.
        value: String,
        /// Only if the key's current version is this (0: only if absent).
        #[arg(long)]
        expect_version: Option<u64>,
        #[command(flatten)]
        target: Target,
    },
    /// Delete a key.
    Rm {
        /// Key.
        key: String,
        #[command(flatten)]
        target: Target,
    },
    /// List keys with a prefix.
    Ls {
        /// Key prefix.
        #[arg(default_value = "")]
        prefix: String,
        #[command(flatten)]
        target: Target,
    },
}

/// `capstan ca ...`.
#[derive(Subcommand, Debug)]
pub enum CaCommand {
    /// Roll the cluster root CA without downtime.
    Rotate,
}

/// `capstan bench`.
#[derive(Args, Debug)]
pub struct BenchArgs {
    /// What to measure: `store` (a three-manager cluster on loopback, then
    /// a three-member etcd cluster with the same workload) or `schedule`
    /// (100 simulated nodes with a 10,000-replica service, then 100 real
    /// replicas on this Docker engine against Docker Swarm), `authz` (RBAC
    /// decision latency over 10,000 grants), `gateway` (authenticated
    /// requests per second over TLS from 64 connections), `proxy` (the
    /// Docker API proxy next to the local engine in swarm mode, with 200
    /// services and 1,000 tasks on each) or `registry` (push and pull
    /// throughput of an image of 10 layers of 20 MB, single and 32 pulls at
    /// once, and peak memory, against Debian's `docker-registry`) or
    /// `trust` (Notary publishes and reads per second from 16 clients,
    /// against Debian's `notary-server`) or `dashboard` (time and size of
    /// the web dashboard's main pages with 50 nodes, 1,000 services,
    /// 10,000 tasks and 500 users in the store).
    pub what: String,
    /// Seconds to run each measured phase (`registry` runs a fixed
    /// workload instead).
    #[arg(long, default_value_t = 5)]
    pub seconds: u64,
    /// Skip the peer: etcd for `store` (otherwise `etcd` must be on the
    /// PATH; on Debian: `apt-get install etcd-server`), the real-Docker phase
    /// and its Docker Swarm comparison for `schedule`, `docker-registry`
    /// for `registry` (on Debian: `apt-get install docker-registry`),
    /// `notary-server` for `trust` (`apt-get install notary`).
    #[arg(long)]
    pub no_peer: bool,
    /// Writes of distinct keys after the timed phases, before data-dir
    /// size and memory are measured (0 skips the growth phase).
    #[arg(long, default_value_t = 1_000_000)]
    pub growth_writes: u64,
    /// Where the clients of the timed phases connect: `leader` (every
    /// client on the leader) or `all` (spread over the three members).
    #[arg(long, value_enum, default_value_t = ClientsOn::Leader)]
    pub clients_on: ClientsOn,
    /// Directory for the clusters' temporary data (`store`, `registry`)
    /// [default: the system temporary directory]. Put it on the disk you
    /// want measured.
    #[arg(long)]
    pub work_dir: Option<PathBuf>,
    /// `registry`: the license to install so that Capstan's registry
    /// accepts pushes [default: the test license, which only builds with
    /// debug assertions trust].
    #[arg(long)]
    pub license: Option<PathBuf>,
    /// Keep the clusters' data directories and logs after the run, for
    /// inspection (their path is printed on stderr).
    #[arg(long)]
    pub keep_work_dir: bool,
}

/// Which members benchmark clients connect to.
#[derive(clap::ValueEnum, Clone, Copy, Debug, PartialEq, Eq)]
pub enum ClientsOn {
    /// Every client on the current leader.
    Leader,
    /// Client `i` on member `i mod 3`.
    All,
}

/// Writes log output to stderr and keeps its tail in memory for support
/// bundles (`capstan_core::log_tail`).
struct LogWriter;

impl std::io::Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        capstan_core::log_tail::global().push(&String::from_utf8_lossy(buf));
        std::io::stderr().write_all(buf)?;
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

/// Installs the tracing subscriber: `level` from --log-level, CAPSTAN_LOG or
/// the config file; else info for node roles and warn for client commands.
pub fn init_logging(cli: &Cli, level: Option<&str>) {
    let runs_a_node = matches!(
        cli.command,
        Command::Up(_)
            | Command::Install(_)
            | Command::Join(_)
            | Command::Manager
            | Command::Agent(_)
            | Command::Registry(_)
            | Command::Restore(_)
    );
    let default = if runs_a_node {
        "info,openraft=warn"
    } else {
        "warn"
    };
    let filter = tracing_subscriber::EnvFilter::try_new(level.unwrap_or(default))
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(|| LogWriter);
    if cli.log_json {
        builder.json().init();
    } else {
        builder.init();
    }
}
