//! `capstan kv`: the `kv` table of the replicated store, for maintenance,
//! diagnostics and the store benchmark.

use anyhow::{bail, Context};
use capstan_manager::DataDir;
use capstan_proto::v1 as pb;

use super::node::status_error;
use crate::cli::KvCommand;

/// The table `capstan kv` reads and writes.
pub const KV_TABLE: &str = "kv";

/// `capstan kv ...`.
pub async fn kv(dir: &DataDir, cmd: KvCommand) -> anyhow::Result<()> {
    match cmd {
        KvCommand::Get { key, local, target } => {
            let mut c = capstan_manager::client::connect(dir, target.host.as_deref()).await?;
            let consistency = if local {
                pb::Consistency::Serializable
            } else {
                pb::Consistency::Linearizable
            };
            let resp = c
                .read(pb::ReadRequest {
                    table: KV_TABLE.into(),
                    id: key.clone(),
                    consistency: consistency.into(),
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let Some(obj) = resp.object else {
                bail!("no key {key:?}");
            };
            let text = String::from_utf8(obj.value).context("value is not UTF-8")?;
            println!("{text}");
            eprintln!("version {}", obj.version);
        }
        KvCommand::Put {
            key,
            value,
            expect_version,
            target,
        } => {
            let mut c = capstan_manager::client::connect(dir, target.host.as_deref()).await?;
            let resp = c
                .write(pb::WriteRequest {
                    ops: vec![pb::WriteOp {
                        table: KV_TABLE.into(),
                        id: key,
                        op: Some(pb::write_op::Op::Put(value.into_bytes())),
                        expected_version: expect_version.unwrap_or(0),
                        any_version: expect_version.is_none(),
                    }],
                })
                .await
                .map_err(status_error)?
                .into_inner();
            let version = resp
                .objects
                .first()
                .map(|o| o.version)
                .unwrap_or(resp.log_index);
            println!("version {version}");
        }
        KvCommand::Rm { key, target } => {
            let mut c = capstan_manager::client::connect(dir, target.host.as_deref()).await?;
            c.write(pb::WriteRequest {
                ops: vec![pb::WriteOp {
                    table: KV_TABLE.into(),
                    id: key,
                    op: Some(pb::write_op::Op::Delete(true)),
                    expected_version: 0,
                    any_version: true,
                }],
            })
            .await
            .map_err(status_error)?;
        }
        KvCommand::Ls { prefix, target } => {
            let mut c = capstan_manager::client::connect(dir, target.host.as_deref()).await?;
            let resp = c
                .list(pb::ListRequest {
                    table: KV_TABLE.into(),
                    prefix,
                    consistency: pb::Consistency::Linearizable.into(),
                    limit: 0,
                })
                .await
                .map_err(status_error)?
                .into_inner();
            for o in resp.objects {
                println!("{}\t{}", o.id, o.version);
            }
        }
    }
    Ok(())
}
