//! `backup`, `restore` and `support-bundle`: what an operator takes off a
//! cluster.

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};

use anyhow::{bail, Context};
use capstan_manager::backup::{self, Contents, MIN_PASSPHRASE};
use capstan_manager::bootstrap::Site;
use capstan_manager::{DataDir, NodeConfig};
use capstan_proto::v1 as pb;
use capstan_store::StoredObject;

use super::node::status_error;
use super::setup;
use crate::cli::{BackupArgs, PassphraseArg, RestoreArgs, SupportBundleArgs};
use crate::settings::{parse_ttl_days, FileSettings};

/// The passphrase: `--passphrase-file`, else `CAPSTAN_BACKUP_PASSPHRASE`,
/// else asked on the terminal (twice when `confirm`).
fn passphrase(arg: &PassphraseArg, confirm: bool) -> anyhow::Result<String> {
    if let Some(f) = &arg.passphrase_file {
        let text = std::fs::read_to_string(f)
            .with_context(|| format!("read --passphrase-file {}", f.display()))?;
        return Ok(text.lines().next().unwrap_or_default().to_string());
    }
    if let Ok(p) = std::env::var("CAPSTAN_BACKUP_PASSPHRASE") {
        return Ok(p);
    }
    if !std::io::stdin().is_terminal() {
        bail!("no passphrase: pass --passphrase-file or set CAPSTAN_BACKUP_PASSPHRASE");
    }
    let p = rpassword::prompt_password("Backup passphrase: ").context("read passphrase")?;
    if confirm {
        let again =
            rpassword::prompt_password("Repeat the passphrase: ").context("read passphrase")?;
        if p != again {
            bail!("the two passphrases differ");
        }
    }
    Ok(p)
}

fn read_file(path: &Path) -> anyhow::Result<Vec<u8>> {
    std::fs::read(path).with_context(|| format!("read {}", path.display()))
}

/// `capstan backup`.
pub async fn backup(dir: &DataDir, args: BackupArgs) -> anyhow::Result<()> {
    let to_stdout = args.output == Path::new("-");
    if to_stdout && std::io::stdout().is_terminal() {
        bail!("standard output is a terminal: pass -o FILE, or redirect it");
    }
    let passphrase = passphrase(&args.passphrase, true)?;
    if passphrase.chars().count() < MIN_PASSPHRASE {
        return Err(backup::BackupError::WeakPassphrase.into());
    }
    let mut client = capstan_manager::client::connect(dir, args.target.host.as_deref()).await?;
    let config = NodeConfig::load(&dir.config())?;
    let mut stream = client
        .backup(pb::BackupRequest {})
        .await
        .map_err(status_error)?
        .into_inner();
    let (mut index, mut data) = (0, Vec::new());
    while let Some(chunk) = stream.message().await.map_err(status_error)? {
        index = chunk.applied_index;
        data.extend_from_slice(&chunk.data);
    }
    let objects: Vec<StoredObject> =
        serde_json::from_slice(&data).context("the manager's backup stream is not valid")?;
    let contents = Contents::new(
        String::from_utf8(read_file(&dir.ca_cert())?).context("the CA certificate is not text")?,
        String::from_utf8(read_file(&dir.ca_key())?).context("the CA key is not text")?,
        &read_file(&dir.secret_key())?,
        objects,
    );
    let count = contents.objects.len();
    let sealed = backup::seal(&contents, &config.cluster_id, index, &passphrase)?;
    let written_to = if to_stdout {
        let mut out = std::io::stdout().lock();
        out.write_all(&sealed).context("write the backup")?;
        out.flush().context("write the backup")?;
        "standard output".to_string()
    } else {
        capstan_pki::write_private_file(&args.output, &sealed)?;
        args.output.display().to_string()
    };
    eprintln!(
        "Backup of cluster {} at Raft index {index}: {count} objects, {} bytes, written to {written_to}.",
        config.cluster_id,
        sealed.len()
    );
    Ok(())
}

fn read_backup(from: &PathBuf) -> anyhow::Result<Vec<u8>> {
    if from == Path::new("-") {
        let mut bytes = Vec::new();
        std::io::stdin()
            .lock()
            .read_to_end(&mut bytes)
            .context("read the backup from standard input")?;
        return Ok(bytes);
    }
    read_file(from)
}

/// `capstan restore`.
pub async fn restore(dir: DataDir, args: RestoreArgs, file: &FileSettings) -> anyhow::Result<()> {
    if !args.check && dir.is_installed() {
        bail!(
            "{} already holds a Capstan node: restore into an empty data directory",
            dir.root().display()
        );
    }
    let bytes = read_backup(&args.from)?;
    // What can be checked without the passphrase is checked before asking.
    backup::inspect(&bytes)?;
    let passphrase = passphrase(&args.passphrase, false)?;
    let (manifest, contents) = backup::open(&bytes, &passphrase)?;
    if args.check {
        println!("{}", serde_json::to_string_pretty(&manifest)?);
        return Ok(());
    }
    let hostname = setup::hostname();
    let net = setup::resolve_net(&args.net, file, &hostname)?;
    let ttl = args
        .cert_ttl
        .clone()
        .or_else(|| file.cert_ttl.clone())
        .unwrap_or_else(|| "90d".into());
    let site = Site {
        host_address: net.host_address,
        hostname,
        sans: net.sans,
        listen_address: net.listen_address,
        swarm_port: net.swarm_port,
        controller_port: net.controller_port,
        kube_apiserver_port: net.kube_apiserver_port,
        cert_ttl_days: parse_ttl_days(&ttl).context("--cert-ttl")?,
    };
    let config = capstan_manager::restore::restore(&dir, &site, &manifest, contents)?;
    println!(
        "Restored cluster {} from its backup at Raft index {} ({} objects, written {}).",
        manifest.cluster_id,
        manifest.raft_index,
        manifest.objects,
        manifest
            .created_at
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    );
    if args.init_only {
        println!(
            "Start it with `capstan manager --data-dir {}`; join more managers with `capstan token manager`.",
            dir.root().display()
        );
        return Ok(());
    }
    setup::run_foreground(dir, file, move |ready| {
        println!(
            "Manager {} leads restored cluster {}; dashboard and REST API at https://{}",
            ready.node_id,
            config.cluster_id,
            capstan_manager::config::join_host_port(&config.host_address, config.controller_port)
        );
    })
    .await
}

/// `capstan support-bundle`.
pub async fn support_bundle(dir: &DataDir, args: SupportBundleArgs) -> anyhow::Result<()> {
    let local = capstan_manager::client::connect(dir, args.target.host.as_deref()).await?;
    let config = NodeConfig::load(&dir.config())?;
    let zip = capstan_manager::support::gather(
        local,
        |addr| capstan_manager::client::lazy(dir, addr),
        vec![],
    )
    .await?;
    let output = args.output.unwrap_or_else(|| {
        let now = time::OffsetDateTime::now_utc();
        PathBuf::from(format!(
            "capstan-support-{}-{}.zip",
            config.cluster_id,
            now.unix_timestamp()
        ))
    });
    if output == Path::new("-") {
        if std::io::stdout().is_terminal() {
            bail!("standard output is a terminal: pass -o FILE, or redirect it");
        }
        let mut out = std::io::stdout().lock();
        out.write_all(&zip).context("write the support bundle")?;
        out.flush().context("write the support bundle")?;
    } else {
        capstan_pki::write_private_file(&output, &zip)?;
        eprintln!(
            "Support bundle of cluster {} written to {} ({} bytes).",
            config.cluster_id,
            output.display(),
            zip.len()
        );
    }
    Ok(())
}
