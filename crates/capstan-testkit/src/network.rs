//! A private bridge network per test: the test's hosts talk over it, and
//! disconnecting a container from it is how a test partitions the cluster.

use crate::docker::docker;
use crate::error::{Error, Result};
use crate::run_id::RunId;

/// A docker bridge network labelled with its run id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TestNetwork {
    /// The docker network name, `<run id>-<hint>`.
    pub name: String,
    /// The subnet docker picked, e.g. `172.18.0.0/16`.
    pub subnet: String,
}

impl TestNetwork {
    /// Creates a bridge network named after `name_hint` and reads back the
    /// subnet docker gave it. [`crate::Harness::network`] does this and
    /// removes the network when the harness is dropped.
    pub fn create(run: &RunId, name_hint: &str) -> Result<TestNetwork> {
        let name = run.scoped_name(name_hint);
        let mut args = vec![
            "network".to_owned(),
            "create".to_owned(),
            "--driver".to_owned(),
            "bridge".to_owned(),
        ];
        args.extend(run.label_args());
        args.push(name.clone());
        docker(&args)?;

        let subnet = docker([
            "network",
            "inspect",
            "--format",
            "{{range .IPAM.Config}}{{.Subnet}} {{end}}",
            &name,
        ])?;
        let subnet = subnet
            .split_whitespace()
            .find(|s| !s.contains(':'))
            .ok_or_else(|| Error::UnexpectedOutput {
                command: format!("docker network inspect {name}"),
                detail: "no IPv4 subnet".to_owned(),
                output: subnet.clone(),
            })?
            .to_owned();
        Ok(TestNetwork { name, subnet })
    }
}
