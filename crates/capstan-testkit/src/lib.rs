//! The multi-node Docker harness Capstan's integration tests run clusters with.
//!
//! A test makes a [`Harness`], builds the [`TestImage`] for the capstan binary
//! under test, creates a private [`TestNetwork`] and starts [`Container`]s from
//! [`ContainerSpec`]s; it then breaks them (kill, stop, pause, disconnect) and
//! waits for the cluster to converge with [`wait_until`] or [`wait_for`].
//!
//! ```no_run
//! # async fn example() -> capstan_testkit::Result<()> {
//! use std::time::Duration;
//! use capstan_testkit::{ContainerSpec, Harness, TestImage};
//!
//! let harness = Harness::new()?;
//! let image = TestImage::busybox_only()?;
//! let net = harness.network("lab")?;
//! let node = harness.run(
//!     ContainerSpec::new("node01", image.tag()).cmd(["sleep", "300"]).network(&net),
//! )?;
//! node.pause()?;
//! node.unpause()?;
//! capstan_testkit::wait_until(Duration::from_secs(10), Duration::from_millis(200), || {
//!     node.is_running()
//! })
//! .await?;
//! # Ok(()) }
//! ```
//!
//! Environment:
//! - `CAPSTAN_BIN`: the capstan binary for [`capstan_binary`] (scripts/test.sh
//!   sets it to the static debug build).
//! - `CAPSTAN_TEST_BUSYBOX`: a static busybox other than `/bin/busybox`.
//! - `CAPSTAN_TEST_KEEP=1`: leave a test's containers and networks in place for
//!   a post-mortem; a later run removes them once the test process is gone.
//!
//! Architecture invariant: the testkit drives only the local docker CLI and
//! removes only resources labelled `capstan.test.owner=capstan-testkit`; it
//! knows nothing about capstan's own APIs, so tests stay in charge of what
//! they assert.

mod binary;
mod container;
mod docker;
mod error;
mod harness;
mod image;
mod leftovers;
mod network;
mod run_id;
mod wait;

pub use binary::{capstan_binary, DEFAULT_BUSYBOX};
pub use container::{Container, ContainerSpec, ExecOutput};
pub use error::{Error, Result};
pub use harness::Harness;
pub use image::TestImage;
pub use network::TestNetwork;
pub use run_id::{RunId, OWNER, OWNER_LABEL, RUN_LABEL};
pub use wait::{wait_for, wait_for_async, wait_until, Probe};
