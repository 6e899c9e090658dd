//! The `command` kind: a program the user configures, run without a shell.
//!
//! It runs in the book's root with the request as JSON on stdin and in `IMAGEGEN_*` environment
//! variables. It answers with the image on stdout, or by writing it to `IMAGEGEN_OUTPUT`, or by
//! printing the path of the file it wrote as the last line of stdout. A non-zero exit is an
//! error that quotes the end of its stderr; exit status 75 (`EX_TEMPFAIL`) asks for a retry.

use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::json;

use super::{Call, Fault, FaultKind, Generated, MAX_MASTER_BYTES, Provenance};

/// The exit status that asks for a retry.
const EX_TEMPFAIL: i32 = 75;

pub(super) fn call(call: &Call<'_>) -> Result<Generated, Fault> {
    let request = call.request;
    let argv = &call.profile.command;
    let program = &argv[0];
    let scratch = scratch()?;
    let output = scratch.path().join("image.png");
    let input = json!({
        "task": "generate",
        "prompt": request.prompt,
        "negative_prompt": super::negative_field(request),
        "model": request.model,
        "width": request.size.width,
        "height": request.size.height,
        "quality": request.quality,
        "seed": super::seed_sent(request),
        "params": request.params,
        "references": request.references.iter().map(|r| json!({
            "label": r.label,
            "path": r.path,
            "hash": r.hash,
            "media_type": r.media_type,
        })).collect::<Vec<_>>(),
        "output": output,
    });

    let command = command_for(call, &output);
    let stdout = run_command(
        command,
        program,
        &input.to_string(),
        call.timeout,
        MAX_MASTER_BYTES,
    )?;
    let bytes = image_of(call, stdout, &output, scratch.path())?;
    Ok(Generated {
        bytes,
        cost_usd: None,
        provenance: Provenance::default(),
    })
}

/// A fresh scratch directory for a program's files, removed when dropped.
pub(super) fn scratch() -> Result<tempfile::TempDir, Fault> {
    tempfile::Builder::new()
        .prefix("mdbook-imagegen-")
        .tempdir()
        .map_err(|e| {
            Fault::new(
                FaultKind::Transient,
                format!("cannot make a scratch directory: {e}"),
            )
        })
}

/// Runs a program of a `command` profile in the book's root, with `vars` in its environment and
/// `input` on stdin; returns its stdout (at most `limit` bytes) when it succeeds.
pub(super) fn run(
    argv: &[String],
    root: &Path,
    vars: &[(&str, &str)],
    input: &str,
    timeout: Duration,
    limit: usize,
) -> Result<Vec<u8>, Fault> {
    let mut command = Command::new(&argv[0]);
    command
        .args(&argv[1..])
        .current_dir(root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    for (name, value) in vars {
        command.env(name, value);
    }
    run_command(command, &argv[0], input, timeout, limit)
}

/// Runs a prepared command with `input` on stdin, stopping it at the timeout; a non-zero exit
/// is an error that quotes the end of its stderr (75 asks for a retry).
fn run_command(
    mut command: Command,
    program: &str,
    input: &str,
    timeout: Duration,
    limit: usize,
) -> Result<Vec<u8>, Fault> {
    let mut child = command.spawn().map_err(|e| {
        Fault::new(
            FaultKind::Invalid,
            format!("cannot run `{program}`: {e}; check `command` in the profile"),
        )
    })?;

    let mut stdin = child.stdin.take().expect("piped");
    let input = input.to_owned();
    let writer = thread::spawn(move || {
        // A program that does not read its stdin is fine.
        let _ = stdin.write_all(input.as_bytes());
    });
    let stdout = read_in_background(child.stdout.take().expect("piped"), limit);
    let stderr = read_in_background(child.stderr.take().expect("piped"), 64 << 10);

    let status = wait(&mut child, program, timeout)?;
    let _ = writer.join();
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();

    if !status.success() {
        let kind = if status.code() == Some(EX_TEMPFAIL) {
            FaultKind::Transient
        } else {
            FaultKind::Invalid
        };
        let tail = tail(&stderr);
        return Err(Fault::new(
            kind,
            format!(
                "`{program}` exited with {status}{}",
                if tail.is_empty() {
                    " and printed nothing on stderr".to_owned()
                } else {
                    format!("; its stderr ends with: {tail}")
                }
            ),
        ));
    }
    Ok(stdout)
}

/// The program of a `command` profile, with the request in its environment.
fn command_for(call: &Call<'_>, output: &Path) -> Command {
    let request = call.request;
    let argv = &call.profile.command;
    let program = &argv[0];
    let mut command = Command::new(program);
    command
        .args(&argv[1..])
        .current_dir(call.root)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .env("IMAGEGEN_PROMPT", &request.prompt)
        .env(
            "IMAGEGEN_NEGATIVE_PROMPT",
            super::negative_field(request).unwrap_or(""),
        )
        .env("IMAGEGEN_MODEL", &request.model)
        .env("IMAGEGEN_WIDTH", request.size.width.to_string())
        .env("IMAGEGEN_HEIGHT", request.size.height.to_string())
        .env("IMAGEGEN_SIZE", request.size.to_string())
        .env("IMAGEGEN_QUALITY", request.quality.as_deref().unwrap_or(""))
        .env(
            "IMAGEGEN_SEED",
            super::seed_sent(request)
                .map(|s| s.to_string())
                .unwrap_or_default(),
        )
        .env("IMAGEGEN_OUTPUT", output)
        .env("IMAGEGEN_TASK", "generate");
    command
}

/// Waits for the program, stopping it at the timeout.
fn wait(child: &mut Child, program: &str, timeout: Duration) -> Result<ExitStatus, Fault> {
    let deadline = Instant::now() + timeout;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Ok(status),
            Ok(None) if Instant::now() >= deadline => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(Fault::new(
                    FaultKind::Transient,
                    format!(
                        "`{program}` did not finish within {} and was stopped (raise `timeout`)",
                        humantime::format_duration(timeout)
                    ),
                ));
            }
            Ok(None) => thread::sleep(Duration::from_millis(20)),
            Err(e) => {
                return Err(Fault::new(
                    FaultKind::Transient,
                    format!("cannot wait for `{program}`: {e}"),
                ));
            }
        }
    }
}

/// The image a program that succeeded made: on its stdout, at `$IMAGEGEN_OUTPUT`, or at the path
/// it printed last (inside the book or the scratch directory only).
fn image_of(
    call: &Call<'_>,
    stdout: Vec<u8>,
    output: &Path,
    scratch: &Path,
) -> Result<Vec<u8>, Fault> {
    let program = &call.profile.command[0];
    if super::inspect(&stdout).is_ok() {
        return Ok(stdout);
    }
    if crate::files::is_regular(output) {
        return read_file(output);
    }
    let text = String::from_utf8_lossy(&stdout);
    let Some(line) = text.lines().map(str::trim).rfind(|l| !l.is_empty()) else {
        return Err(Fault::new(
            FaultKind::BadImage,
            format!(
                "`{program}` succeeded but gave no image: write it to stdout or to $IMAGEGEN_OUTPUT, or print its path"
            ),
        ));
    };
    let Some(path) = printed_path(call.root, scratch, line) else {
        return Err(Fault::new(
            FaultKind::BadImage,
            format!(
                "`{program}` printed `{line}`, a path outside the book; write the image to $IMAGEGEN_OUTPUT (or inside the book) instead"
            ),
        ));
    };
    if !crate::files::is_regular(&path) {
        return Err(Fault::new(
            FaultKind::BadImage,
            format!(
                "`{program}` printed `{line}`, which is neither an image nor the path of a file"
            ),
        ));
    }
    read_file(&path)
}

/// Where a path a program printed points, if that is inside the book or the scratch directory
/// (the tool reads nothing outside the book).
fn printed_path(root: &Path, scratch: &Path, line: &str) -> Option<PathBuf> {
    let printed = Path::new(line);
    if !printed.is_absolute() {
        return crate::files::join_inside(root, printed);
    }
    [root, scratch].into_iter().find_map(|base| {
        let below = printed.strip_prefix(base).ok()?;
        crate::files::join_inside(base, below)
    })
}

/// Reads an image file the program wrote: a regular file (not a link, a FIFO or a device)
/// under the size limit.
fn read_file(path: &Path) -> Result<Vec<u8>, Fault> {
    crate::files::read_regular(path, MAX_MASTER_BYTES as u64).map_err(|e| {
        Fault::new(
            FaultKind::BadImage,
            format!("cannot read the image `{}`: {e}", path.display()),
        )
    })
}

/// Reads a pipe to its end (keeping at most `limit` bytes) on its own thread, so that a chatty
/// program never blocks on a full pipe.
fn read_in_background(
    mut pipe: impl Read + Send + 'static,
    limit: usize,
) -> thread::JoinHandle<Vec<u8>> {
    thread::spawn(move || {
        let mut kept = Vec::new();
        let mut buffer = [0u8; 64 << 10];
        loop {
            match pipe.read(&mut buffer) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    let room = (limit + 1).saturating_sub(kept.len());
                    kept.extend_from_slice(&buffer[..n.min(room)]);
                }
            }
        }
        kept
    })
}

/// The last lines of a program's stderr, for an error message.
fn tail(stderr: &[u8]) -> String {
    let text = String::from_utf8_lossy(stderr);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let start = lines.len().saturating_sub(10);
    // One line (the message goes into a figure); the provider edge redacts secrets from it
    // and caps it.
    lines[start..]
        .iter()
        .map(|l| l.trim())
        .collect::<Vec<_>>()
        .join(" | ")
}
