//! The one place that runs the `docker` command line.
//!
//! The harness drives the stock CLI rather than the Engine API on purpose: it
//! is what an operator types, it needs no extra dependency, and a failing
//! command can be pasted into a shell as it is printed in the error.

use std::ffi::OsStr;
use std::process::{Command, Output};

use crate::error::{Error, Result};

/// Runs `docker <args>` and returns its stdout, trimmed; a non-zero exit is an
/// error carrying stderr.
pub(crate) fn docker<I, S>(args: I) -> Result<String>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let (command, output) = docker_output(args)?;
    if !output.status.success() {
        return Err(Error::CommandFailed {
            command,
            status: output.status.to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).trim().to_owned())
}

/// Runs `docker <args>` and returns the command line and its raw output,
/// whatever the exit status.
pub(crate) fn docker_output<I, S>(args: I) -> Result<(String, Output)>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    let args: Vec<_> = args.into_iter().map(|a| a.as_ref().to_owned()).collect();
    let command = render("docker", &args);
    let output = Command::new("docker")
        .args(&args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|source| match source.kind() {
            std::io::ErrorKind::NotFound => Error::DockerMissing,
            _ => Error::Spawn {
                command: command.clone(),
                source,
            },
        })?;
    Ok((command, output))
}

/// Whether `docker <args>` exits zero; for existence checks such as
/// `docker image inspect`.
pub(crate) fn docker_succeeds<I, S>(args: I) -> Result<bool>
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Ok(docker_output(args)?.1.status.success())
}

/// A shell-like rendering of a command line for error messages.
pub(crate) fn render(program: &str, args: &[std::ffi::OsString]) -> String {
    let mut line = program.to_owned();
    for arg in args {
        let arg = arg.to_string_lossy();
        line.push(' ');
        let plain = !arg.is_empty()
            && arg
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+".contains(c));
        if plain {
            line.push_str(&arg);
        } else {
            line.push('\'');
            line.push_str(&arg.replace('\'', r"'\''"));
            line.push('\'');
        }
    }
    line
}

/// Splits command output into its non-empty lines.
pub(crate) fn lines(output: &str) -> Vec<String> {
    output
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn render_quotes_only_what_a_shell_would_split() {
        let args: Vec<std::ffi::OsString> = ["run", "--label", "a=b c", "it's", ""]
            .iter()
            .map(Into::into)
            .collect();
        assert_eq!(
            render("docker", &args),
            r"docker run --label 'a=b c' 'it'\''s' ''"
        );
    }
}
