//! Fixtures and checks the tests share: images, the files under a directory, plan statuses,
//! and commands that must succeed.

use std::path::{Path, PathBuf};
use std::process::Output;

use serde_json::Value;

/// A small real PNG of one colour.
pub(crate) fn png(width: u32, height: u32) -> Vec<u8> {
    let image = image::RgbImage::from_pixel(width, height, image::Rgb([60, 110, 170]));
    let mut bytes = Vec::new();
    image
        .write_to(
            &mut std::io::Cursor::new(&mut bytes),
            image::ImageFormat::Png,
        )
        .unwrap();
    bytes
}

/// [`png`], base64-encoded as JSON APIs send images.
pub(crate) fn png_base64(width: u32, height: u32) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(png(width, height))
}

/// Every file under `root`, symbolic links not followed (none when `root` is missing).
pub(crate) fn walk(root: &Path) -> Vec<PathBuf> {
    let mut stack = vec![root.to_owned()];
    let mut files = Vec::new();
    while let Some(dir) = stack.pop() {
        let Ok(items) = std::fs::read_dir(&dir) else {
            continue;
        };
        for item in items {
            let path = item.unwrap().path();
            let kind = std::fs::symlink_metadata(&path).unwrap().file_type();
            if kind.is_dir() {
                stack.push(path);
            } else if kind.is_file() {
                files.push(path);
            }
        }
    }
    files
}

/// Fails if any of `needles` is in anything `outputs` printed or in any file under `root`;
/// returns how many files it read.
pub(crate) fn assert_nowhere(root: &Path, outputs: &[&Output], needles: &[&str]) -> usize {
    for output in outputs {
        for stream in [&output.stdout, &output.stderr] {
            let text = String::from_utf8_lossy(stream);
            for needle in needles {
                assert!(!text.contains(needle), "a key was printed: {text}");
            }
        }
    }
    let files = walk(root);
    for file in &files {
        let bytes = std::fs::read(file).unwrap();
        for needle in needles {
            assert!(
                !bytes.windows(needle.len()).any(|w| w == needle.as_bytes()),
                "a key is in {}",
                file.display()
            );
        }
    }
    files.len()
}

/// The status of each row of a plan.
pub(crate) fn statuses(rows: &[Value]) -> Vec<&str> {
    rows.iter().map(|r| r["status"].as_str().unwrap()).collect()
}

/// Fails unless the command succeeded; returns what it printed on stderr.
pub(crate) fn ok(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{stderr}");
    stderr
}

/// Fails if the command succeeded; returns what it printed on stderr.
pub(crate) fn failed(output: &Output) -> String {
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!output.status.success(), "{stderr}");
    stderr
}

/// Fails if `key` appears in any file under the book or in anything a build printed.
pub(crate) fn assert_no_key_of(key: &str, root: &Path, outputs: &[&Output]) {
    let files = assert_nowhere(root, outputs, &[key]);
    assert!(files > 5, "there are files to check");
}
