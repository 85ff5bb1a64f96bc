//! `capstan audit verify`: checks the hash chain of an audit log.

use std::io::BufRead;
use std::path::PathBuf;

use anyhow::{bail, Context};
use capstan_core::audit::{verify as verify_chain, AuditEntry};
use capstan_manager::DataDir;

/// Verifies the chain and prints how many entries it checked.
pub fn verify(dir: &DataDir, file: Option<PathBuf>) -> anyhow::Result<()> {
    let path = file.unwrap_or_else(|| capstan_gateway::audit::audit_file(dir.root()));
    let f = std::fs::File::open(&path)
        .with_context(|| format!("open the audit log {}", path.display()))?;
    let mut read_error = None;
    let entries = std::io::BufReader::new(f)
        .lines()
        .map_while(|line| match line {
            Ok(l) => Some(serde_json::from_str::<AuditEntry>(&l).map_err(|e| e.to_string())),
            Err(e) => {
                read_error = Some(e);
                None
            }
        });
    let result = verify_chain(entries);
    if let Some(e) = read_error {
        bail!("cannot read {}: {e}", path.display());
    }
    match result {
        Ok(n) => {
            println!(
                "audit log {} is intact: {n} entries chained",
                path.display()
            );
            Ok(())
        }
        Err(b) => bail!("audit log {} is broken: {b}", path.display()),
    }
}
