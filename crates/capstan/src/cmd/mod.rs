//! One module per command family; each turns parsed arguments into calls on
//! the library crates and prints the result.

mod agent;
mod audit;
mod backup;
mod bench;
mod doctor;
mod kv;
mod node;
mod registry;
mod setup;

use std::path::PathBuf;

use anyhow::bail;
use capstan_manager::DataDir;

use crate::cli::{AuditCommand, CaCommand, Cli, Command};
use crate::settings::FileSettings;

/// The data directory: the flag or env, else the config file, else a
/// per-user default.
pub fn data_dir(cli_value: Option<PathBuf>, file_value: Option<PathBuf>) -> DataDir {
    if let Some(p) = cli_value.or(file_value) {
        return DataDir::new(p);
    }
    let is_root = std::env::var("USER").map(|u| u == "root").unwrap_or(false)
        || std::env::var("HOME").map(|h| h == "/root").unwrap_or(false);
    if is_root {
        return DataDir::new("/var/lib/capstan");
    }
    let home = std::env::var("HOME").unwrap_or_else(|_| ".".into());
    DataDir::new(PathBuf::from(home).join(".local/share/capstan"))
}

fn not_yet(what: &str, arrives_with: &str) -> anyhow::Result<()> {
    bail!("`capstan {what}` is not implemented in this version yet ({arrives_with})")
}

/// Runs one command.
pub async fn run(cli: Cli, file: FileSettings) -> anyhow::Result<()> {
    let dir = data_dir(cli.data_dir, file.data_dir.clone());
    match cli.command {
        Command::Up(args) => setup::up(dir, args, &file).await,
        Command::Install(args) => setup::install(dir, args, &file).await,
        Command::Join(args) => setup::join(dir, args, &file).await,
        Command::Manager => setup::manager(dir, &file).await,
        Command::Token(args) => node::token(&dir, args).await,
        Command::Node(cmd) => node::node(&dir, cmd).await,
        Command::Status(args) => node::status(&dir, args).await,
        Command::Kv(cmd) => kv::kv(&dir, cmd).await,
        Command::Bench(args) => bench::bench(args).await,
        Command::Audit(AuditCommand::Verify { file }) => audit::verify(&dir, file),
        Command::Agent(args) => setup::agent(dir, args, &file).await,
        Command::Registry(args) => registry::registry(dir, args).await,
        Command::Backup(args) => backup::backup(&dir, args).await,
        Command::Restore(args) => backup::restore(dir, args, &file).await,
        Command::Doctor(args) => doctor::doctor(&dir, args).await,
        Command::SupportBundle(args) => backup::support_bundle(&dir, args).await,
        Command::Ca(CaCommand::Rotate) => not_yet(
            "ca rotate",
            "root rotation is planned; node certificates already renew by themselves",
        ),
    }
}
