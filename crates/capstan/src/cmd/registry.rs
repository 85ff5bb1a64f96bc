//! `capstan registry`: install the image registry on a node, and run it.

use std::path::PathBuf;

use anyhow::{bail, Context};
use capstan_core::registry::RegisterRequest;
use capstan_manager::config::join_host_port;
use capstan_manager::{DataDir, NodeConfig};
use capstan_registry::RegistryConfig;
use serde::{Deserialize, Serialize};

use crate::cli::{RegistryArgs, RegistryCommand, RegistryInstallArgs};

/// What `registry install` decided, kept in `<data-dir>/registry/registry.toml`.
#[derive(Serialize, Deserialize)]
struct RegistrySettings {
    /// The control plane's gateway.
    control_url: String,
    /// Address to listen on.
    listen_address: String,
    /// HTTPS port.
    port: u16,
    /// `host:port` clients use.
    public_host: String,
}

fn root(dir: &DataDir) -> PathBuf {
    dir.root().join("registry")
}

fn settings_path(dir: &DataDir) -> PathBuf {
    root(dir).join("registry.toml")
}

fn read(path: PathBuf) -> anyhow::Result<String> {
    std::fs::read_to_string(&path).with_context(|| format!("read {}", path.display()))
}

/// The configuration of the registry of this node, serving as `public_host`
/// and asking the control plane at `control_url`.
pub fn config(
    dir: &DataDir,
    public_host: String,
    control_url: String,
) -> anyhow::Result<RegistryConfig> {
    let mut config = RegistryConfig::new(root(dir), public_host, control_url);
    config.ca_pem = read(dir.ca_cert())?;
    config.cert_pem = read(dir.node_cert())?;
    config.key_pem = read(dir.node_key())?;
    if let Ok(v) = std::env::var("CAPSTAN_REGISTRY_DELETES") {
        config.delete_enabled = match v.as_str() {
            "on" | "true" | "1" => true,
            "off" | "false" | "0" => false,
            other => anyhow::bail!("CAPSTAN_REGISTRY_DELETES={other}: use on or off"),
        };
    }
    for (var, slot) in [
        (
            "CAPSTAN_REGISTRY_UPLOAD_TIMEOUT",
            &mut config.upload_timeout,
        ),
        (
            "CAPSTAN_REGISTRY_HOUSEKEEPING_INTERVAL",
            &mut config.housekeeping_interval,
        ),
    ] {
        if let Ok(v) = std::env::var(var) {
            *slot = crate::settings::parse_duration(&v).with_context(|| format!("{var}={v}"))?;
        }
    }
    Ok(config)
}

/// `capstan registry [install ...]`.
pub async fn registry(dir: DataDir, args: RegistryArgs) -> anyhow::Result<()> {
    match args.command {
        Some(RegistryCommand::Install(a)) => install(dir, a).await,
        None => run(dir).await,
    }
}

fn ucp_password(a: &RegistryInstallArgs) -> anyhow::Result<String> {
    match (&a.ucp_password, &a.ucp_password_file) {
        (Some(p), None) => Ok(p.clone()),
        (None, Some(f)) => Ok(read(f.clone())?.trim_end_matches(['\n', '\r']).to_string()),
        (Some(_), Some(_)) => bail!("give --ucp-password or --ucp-password-file, not both"),
        (None, None) => rpassword::prompt_password(format!("Password of {}: ", a.ucp_username))
            .context("read the password (or pass --ucp-password-file)"),
    }
}

async fn install(dir: DataDir, a: RegistryInstallArgs) -> anyhow::Result<()> {
    if !dir.is_installed() {
        bail!(
            "{} holds no node: join this machine to the cluster first (`capstan join --token ... <manager>:2377`), then install the registry",
            dir.root().display()
        );
    }
    let node = NodeConfig::load(&dir.config())?;
    let ca_pem = match a.ucp_ca.strip_prefix('@') {
        Some(file) => read(PathBuf::from(file))?,
        None => a.ucp_ca.clone(),
    };
    let given =
        capstan_pki::digest_of_cert_pem(&ca_pem).context("--ucp-ca is not a PEM certificate")?;
    let ours = capstan_pki::digest_of_cert_pem(&read(dir.ca_cert())?)?;
    if given != ours {
        bail!(
            "--ucp-ca ({}) is not the CA of the cluster this node joined ({}): copy it from Admin Settings > Registry",
            given.as_str(),
            ours.as_str()
        );
    }
    let password = ucp_password(&a)?;
    let host = a.host.clone().unwrap_or_else(|| node.host_address.clone());
    capstan_manager::config::validate_host(&host).map_err(anyhow::Error::msg)?;
    let public_host = if a.replica_port == 443 {
        host.clone()
    } else {
        join_host_port(&host, a.replica_port)
    };
    let record = capstan_registry::control::register(
        &a.ucp_url,
        &ca_pem,
        &a.ucp_username,
        &password,
        &RegisterRequest {
            node_id: node.node_id.to_string(),
            url: format!("https://{public_host}"),
        },
    )
    .await?;
    let settings = RegistrySettings {
        control_url: a.ucp_url.trim_end_matches('/').to_string(),
        listen_address: a
            .listen_address
            .clone()
            .unwrap_or_else(|| node.listen_address.clone()),
        port: a.replica_port,
        public_host,
    };
    std::fs::create_dir_all(root(&dir))?;
    std::fs::write(settings_path(&dir), toml::to_string(&settings)?)
        .with_context(|| format!("write {}", settings_path(&dir).display()))?;
    println!(
        "Registry registered with the control plane: {} on node {}.",
        record.url, record.node_id
    );
    if a.init_only {
        println!(
            "Start it with `capstan registry --data-dir {}`.",
            dir.root().display()
        );
        return Ok(());
    }
    run(dir).await
}

async fn run(dir: DataDir) -> anyhow::Result<()> {
    let text = std::fs::read_to_string(settings_path(&dir)).map_err(|_| {
        anyhow::anyhow!(
            "no registry is installed on this node: run `capstan registry install --ucp-url ... --ucp-ca ... --ucp-username admin` first"
        )
    })?;
    let s: RegistrySettings = toml::from_str(&text)
        .with_context(|| format!("parse {}", settings_path(&dir).display()))?;
    let config = config(&dir, s.public_host.clone(), s.control_url)?;
    let listen = join_host_port(&s.listen_address, s.port);
    println!(
        "Registry serving https://{} (listening on {listen}).",
        s.public_host
    );
    capstan_registry::run(config, &listen, super::setup::cancel_on_signal()).await?;
    Ok(())
}
