//! `capstan`: one binary for every role of a Capstan cluster.
//!
//! This crate only parses the command line and wires the library crates
//! together; it holds no domain logic.

mod cli;
mod cmd;
mod output;
mod settings;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    capstan_pki::install_default_crypto_provider();
    let file = match settings::FileSettings::load(cli.config.as_deref()) {
        Ok(f) => f,
        Err(e) => {
            eprintln!("capstan: {e:#}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let level = cli.log_level.clone().or_else(|| file.log_level.clone());
    cli::init_logging(&cli, level.as_deref());
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("capstan: cannot start the async runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(cmd::run(cli, file)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("capstan: {e:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
