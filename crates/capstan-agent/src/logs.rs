//! A task's container logs, as `docker service logs` reads them from each
//! node.

use bollard::container::LogOutput;
use bollard::query_parameters::LogsOptions as EngineLogsOptions;
use futures::{stream, Stream, StreamExt, TryStreamExt};

use crate::engine::Engine;
use crate::error::AgentError;
use crate::labels::TASK_LABEL;

/// Which logs to read.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogOptions {
    /// Keep the stream open and send new lines as they come.
    pub follow: bool,
    /// Only lines from this time on (Unix milliseconds; 0: from the start).
    pub since_unix_ms: i64,
    /// `"all"`, or the number of last lines to send.
    pub tail: String,
    /// Prefix each line with its RFC 3339 timestamp.
    pub timestamps: bool,
}

impl Default for LogOptions {
    fn default() -> Self {
        LogOptions {
            follow: false,
            since_unix_ms: 0,
            tail: "all".to_owned(),
            timestamps: false,
        }
    }
}

/// A piece of a container's output.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LogPiece {
    /// 1 for stdout, 2 for stderr (0 for stdin, which is never sent).
    pub stream: u32,
    /// The bytes, usually one line.
    pub data: Vec<u8>,
}

/// The log stream of `task_id`'s container on this node.
pub(crate) fn logs(
    engine: Engine,
    task_id: String,
    opts: LogOptions,
) -> impl Stream<Item = Result<LogPiece, AgentError>> + Send + 'static {
    let opened = async move {
        let containers = engine.list(&[format!("{TASK_LABEL}={task_id}")]).await?;
        let container = containers
            .into_iter()
            .find(|c| c.task_id == task_id)
            .ok_or_else(|| AgentError::NoContainer {
                task: task_id.clone(),
            })?;
        let options = engine_options(&opts);
        let pieces = engine
            .docker
            .logs(&container.id, Some(options))
            .map_ok(piece)
            .map_err(move |source| AgentError::Logs {
                task: task_id.clone(),
                source,
            });
        Ok::<_, AgentError>(pieces)
    };
    stream::once(opened).try_flatten().boxed()
}

fn engine_options(opts: &LogOptions) -> EngineLogsOptions {
    let since_seconds = opts.since_unix_ms.max(0) / 1000;
    EngineLogsOptions {
        follow: opts.follow,
        stdout: true,
        stderr: true,
        since: i32::try_from(since_seconds).unwrap_or(i32::MAX),
        until: 0,
        timestamps: opts.timestamps,
        tail: if opts.tail.is_empty() {
            "all".to_owned()
        } else {
            opts.tail.clone()
        },
    }
}

fn piece(output: LogOutput) -> LogPiece {
    let stream = match &output {
        LogOutput::StdIn { .. } => 0,
        LogOutput::StdOut { .. } | LogOutput::Console { .. } => 1,
        LogOutput::StdErr { .. } => 2,
    };
    LogPiece {
        stream,
        data: output.into_bytes().to_vec(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_map_to_the_engines() {
        let o = engine_options(&LogOptions {
            follow: true,
            since_unix_ms: 1_700_000_000_999,
            tail: String::new(),
            timestamps: true,
        });
        assert!(o.follow && o.stdout && o.stderr && o.timestamps);
        assert_eq!(o.since, 1_700_000_000);
        assert_eq!(o.tail, "all");
        assert_eq!(engine_options(&LogOptions::default()).since, 0);
    }

    #[test]
    fn streams_are_numbered_like_docker() {
        let stdout = LogOutput::StdOut {
            message: b"a".to_vec().into(),
        };
        assert_eq!(piece(stdout).stream, 1);
        let console = LogOutput::Console {
            message: b"a".to_vec().into(),
        };
        assert_eq!(piece(console).stream, 1);
        let err = piece(LogOutput::StdErr {
            message: b"oops\n".to_vec().into(),
        });
        assert_eq!(err.stream, 2);
        assert_eq!(err.data, b"oops\n");
    }
}
