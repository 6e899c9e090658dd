//! The spawn timer of `scripts/bench trpl`: runs `argv[1..]` with inherited stdin, stdout and
//! stderr, and appends `<elapsed ns> <exit status> <argv[1..]>` as one line to the file named by
//! `SPAWN_TIMER_LOG` (if set). Exits with the child's code (128 + signal if it was killed).
//!
//! Used as a preprocessor's `command` in book.toml, it measures what mdBook waits for: from the
//! spawn to the child's exit. Standard library only; build with
//! `rustc -O -o target/bench/spawn-timer scripts/bench-timer.rs`.

use std::io::Write;
use std::process::{Command, exit};
use std::time::Instant;

fn main() {
    let args: Vec<std::ffi::OsString> = std::env::args_os().skip(1).collect();
    let Some((program, rest)) = args.split_first() else {
        eprintln!("usage: spawn-timer PROGRAM [ARG...]");
        exit(2);
    };
    let log = std::env::var_os("SPAWN_TIMER_LOG");
    let start = Instant::now();
    let status = match Command::new(program).args(rest).status() {
        Ok(status) => status,
        Err(e) => {
            eprintln!("spawn-timer: cannot run {}: {e}", program.to_string_lossy());
            exit(127);
        }
    };
    let elapsed = start.elapsed().as_nanos();
    let code = status.code().unwrap_or_else(|| {
        #[cfg(unix)]
        {
            use std::os::unix::process::ExitStatusExt;
            128 + status.signal().unwrap_or(0)
        }
        #[cfg(not(unix))]
        {
            1
        }
    });
    if let Some(log) = log {
        let words: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
        let line = format!("{elapsed} {code} {}\n", words.join(" "));
        // One write of one line with O_APPEND, so concurrent timers cannot interleave lines.
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .and_then(|mut file| file.write_all(line.as_bytes()));
        if let Err(e) = written {
            eprintln!("spawn-timer: cannot append to {}: {e}", log.to_string_lossy());
        }
    }
    exit(code);
}
