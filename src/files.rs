//! The file edge: every read, write and removal of the cache and of web files goes through
//! here, so that a book's repository (which a pull request can fill with crafted files) never
//! makes the tool read, write or delete outside the book.
//!
//! - A directory the tool writes into is never a symbolic link, nor below one, counted from the
//!   directory that contains it all (the cache directory, or the book's source directory).
//! - A file it reads is a regular file (not a link, a FIFO or a device) of bounded size.
//! - A file is written to a temporary name beside its directory's root, flushed, then renamed.

use std::io::{self, Read, Write};
use std::path::{Component, Path, PathBuf};

/// Reads a regular file of at most `cap` bytes. A symbolic link, a FIFO, a device or a
/// directory is refused before it is opened, and a file that grows past `cap` while it is read
/// is refused too.
pub(crate) fn read_regular(path: &Path, cap: u64) -> io::Result<Vec<u8>> {
    let meta = std::fs::symlink_metadata(path)?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path, &meta));
    }
    if meta.len() > cap {
        return Err(too_large(meta.len(), cap));
    }
    let file = open_regular(path)?;
    // What was opened is checked again: the name may have been swapped for a link, a FIFO or a
    // device since it was looked at.
    let meta = file.metadata()?;
    if !meta.file_type().is_file() {
        return Err(not_regular(path, &meta));
    }
    let mut bytes = Vec::with_capacity(usize::try_from(meta.len()).unwrap_or(0));
    file.take(cap + 1).read_to_end(&mut bytes)?;
    if bytes.len() as u64 > cap {
        return Err(too_large(bytes.len() as u64, cap));
    }
    Ok(bytes)
}

/// Opens a file for reading without following a final symbolic link, and without waiting on
/// a FIFO for a writer (on Unix; elsewhere the checks before and after the open stand).
fn open_regular(path: &Path) -> io::Result<std::fs::File> {
    let mut options = std::fs::OpenOptions::new();
    options.read(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.custom_flags(libc::O_NOFOLLOW | libc::O_NONBLOCK);
    }
    options.open(path)
}

/// Whether `path` is a regular file (a link to one is not).
pub(crate) fn is_regular(path: &Path) -> bool {
    std::fs::symlink_metadata(path).is_ok_and(|m| m.file_type().is_file())
}

/// The size of a regular file, `None` for anything else or nothing.
pub(crate) fn regular_len(path: &Path) -> Option<u64> {
    std::fs::symlink_metadata(path)
        .ok()
        .filter(|m| m.file_type().is_file())
        .map(|m| m.len())
}

/// Checks that no existing component of `path` below `base` is a symbolic link or something
/// other than a directory (the last component may be a regular file). `path` must lie under
/// `base`, lexically.
pub(crate) fn check_confined(base: &Path, path: &Path) -> io::Result<()> {
    let denied = |message: String| Err(io::Error::new(io::ErrorKind::PermissionDenied, message));
    let outside = || {
        denied(format!(
            "`{}` leaves `{}`; nothing is written or removed there",
            path.display(),
            base.display()
        ))
    };
    let Ok(below) = path.strip_prefix(base) else {
        return outside();
    };
    let mut at = base.to_owned();
    let parts: Vec<Component<'_>> = below.components().collect();
    for (i, part) in parts.iter().enumerate() {
        let Component::Normal(name) = part else {
            return outside();
        };
        at.push(name);
        let meta = match std::fs::symlink_metadata(&at) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) => return Err(e),
        };
        let last = i + 1 == parts.len();
        let kind = meta.file_type();
        if kind.is_symlink() {
            return denied(format!(
                "`{}` is a symbolic link; mdbook-imagegen never follows links out of `{}`; replace it with a directory",
                at.display(),
                base.display()
            ));
        }
        if !(kind.is_dir() || (last && kind.is_file())) {
            return Err(not_regular(&at, &meta));
        }
    }
    Ok(())
}

/// Creates `dir` and its missing parents below `base`, refusing to go through a link.
pub(crate) fn create_dir_confined(base: &Path, dir: &Path) -> io::Result<()> {
    check_confined(base, dir)?;
    std::fs::create_dir_all(dir)?;
    // A link made while the directories were created is caught here.
    check_confined(base, dir)
}

/// Writes `bytes` to `path` atomically: into a temporary file in `tmp_dir` (on the same file
/// system), flushed to disk, then renamed into place. Every directory from `base` down to the
/// file is created when missing and must not be a link.
pub(crate) fn write_atomic(
    base: &Path,
    tmp_dir: &Path,
    path: &Path,
    bytes: &[u8],
) -> io::Result<()> {
    replace(base, tmp_dir, path, bytes, false)
}

/// Writes `bytes` to `path` as [`write_atomic`] does, readable by the others who share the
/// directory (as the umask allows): for a shared store's files that its owner rewrites.
pub(crate) fn replace_shared(
    base: &Path,
    tmp_dir: &Path,
    path: &Path,
    bytes: &[u8],
) -> io::Result<()> {
    replace(base, tmp_dir, path, bytes, true)
}

/// `bytes` staged (see [`staged`]) and renamed over whatever is at `path`.
fn replace(base: &Path, tmp_dir: &Path, path: &Path, bytes: &[u8], shared: bool) -> io::Result<()> {
    staged(base, tmp_dir, path, bytes, shared)?
        .persist(path)
        .map_err(|e| e.error)?;
    Ok(())
}

/// Writes `bytes` to `path` below `base` as [`write_atomic`] does, unless something is there
/// already: that is left as it is (even when written by another process meanwhile), and the
/// answer is `false`. The file is readable by the others who share the directory, as the umask
/// allows.
pub(crate) fn write_new(
    base: &Path,
    tmp_dir: &Path,
    path: &Path,
    bytes: &[u8],
) -> io::Result<bool> {
    check_confined(base, path)?;
    if std::fs::symlink_metadata(path).is_ok() {
        return Ok(false);
    }
    match staged(base, tmp_dir, path, bytes, true)?.persist_noclobber(path) {
        Ok(_) => Ok(true),
        Err(e) if e.error.kind() == io::ErrorKind::AlreadyExists => Ok(false),
        Err(e) => Err(e.error),
    }
}

/// `bytes` in a flushed temporary file in `tmp_dir`, the directories of `path` and `tmp_dir`
/// made below `base` (never through a link), ready to be renamed to `path`. A temporary file is
/// its owner's alone unless `shared`.
fn staged(
    base: &Path,
    tmp_dir: &Path,
    path: &Path,
    bytes: &[u8],
    shared: bool,
) -> io::Result<tempfile::NamedTempFile> {
    let parent = path.parent().unwrap_or(base);
    create_dir_confined(base, parent)?;
    create_dir_confined(base, tmp_dir)?;
    let mut builder = tempfile::Builder::new();
    builder.prefix(".tmp-");
    #[cfg(unix)]
    if shared {
        use std::os::unix::fs::PermissionsExt as _;
        builder.permissions(std::fs::Permissions::from_mode(0o666));
    }
    #[cfg(not(unix))]
    let _ = shared;
    let mut file = builder.tempfile_in(tmp_dir)?;
    file.write_all(bytes)?;
    file.as_file().sync_all()?;
    Ok(file)
}

/// Removes a file below `base`; a link is removed as a link (never followed), and a directory
/// is refused.
pub(crate) fn remove_confined(base: &Path, path: &Path) -> io::Result<()> {
    if let Some(parent) = path.parent() {
        check_confined(base, parent)?;
    }
    let meta = std::fs::symlink_metadata(path)?;
    if meta.is_dir() {
        return Err(not_regular(path, &meta));
    }
    std::fs::remove_file(path)
}

/// Joins a relative path to `base` lexically, refusing one that climbs out of it (`..` past
/// the start, a root, a drive). `.` parts are dropped.
pub(crate) fn join_inside(base: &Path, relative: &Path) -> Option<PathBuf> {
    let mut parts: Vec<&std::ffi::OsStr> = Vec::new();
    for part in relative.components() {
        match part {
            Component::Normal(name) => parts.push(name),
            Component::CurDir => {}
            Component::ParentDir => {
                parts.pop()?;
            }
            Component::RootDir | Component::Prefix(_) => return None,
        }
    }
    let mut out = base.to_owned();
    out.extend(parts);
    Some(out)
}

fn not_regular(path: &Path, meta: &std::fs::Metadata) -> io::Error {
    let kind = meta.file_type();
    let what = if kind.is_symlink() {
        "a symbolic link"
    } else if kind.is_dir() {
        "a directory"
    } else {
        "not a regular file (a FIFO, socket or device)"
    };
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!(
            "`{}` is {what}; the cache holds only regular files",
            path.display()
        ),
    )
}

fn too_large(len: u64, cap: u64) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("{len} bytes, over the limit of {cap} for this kind of file"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_only_regular_files_under_a_cap() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("a.json");
        std::fs::write(&file, b"12345").unwrap();
        assert_eq!(read_regular(&file, 5).unwrap(), b"12345");
        assert!(read_regular(&file, 4).is_err());
        assert!(read_regular(dir.path(), 100).is_err());
        #[cfg(unix)]
        {
            let link = dir.path().join("link.json");
            std::os::unix::fs::symlink(&file, &link).unwrap();
            assert!(read_regular(&link, 100).is_err());
            assert!(!is_regular(&link));
            let zero = dir.path().join("zero.json");
            std::os::unix::fs::symlink("/dev/zero", &zero).unwrap();
            assert!(read_regular(&zero, 100).is_err());
            let fifo = dir.path().join("fifo.json");
            let made = std::process::Command::new("mkfifo").arg(&fifo).status();
            if made.is_ok_and(|s| s.success()) {
                // Refused before it is opened: opening a FIFO would block.
                assert!(read_regular(&fifo, 100).is_err());
            }
        }
    }

    #[cfg(unix)]
    #[test]
    fn writes_and_removals_never_go_through_a_link() {
        let outside = tempfile::tempdir().unwrap();
        let base = tempfile::tempdir().unwrap();
        let base = base.path();
        std::os::unix::fs::symlink(outside.path(), base.join("masters")).unwrap();
        let target = base.join("masters/ab/x.png");
        let error = write_atomic(base, &base.join("tmp"), &target, b"x").unwrap_err();
        assert!(error.to_string().contains("is a symbolic link"), "{error}");
        assert_eq!(std::fs::read_dir(outside.path()).unwrap().count(), 0);
        std::fs::write(outside.path().join("precious"), b"p").unwrap();
        assert!(remove_confined(base, &base.join("masters/precious")).is_err());
        assert!(outside.path().join("precious").exists());
        // A link to a file is removed as a link; its target stays.
        std::fs::create_dir(base.join("records")).unwrap();
        let link = base.join("records/r.json");
        std::os::unix::fs::symlink(outside.path().join("precious"), &link).unwrap();
        remove_confined(base, &link).unwrap();
        assert!(outside.path().join("precious").exists());
        // A normal write works and leaves nothing in tmp.
        write_atomic(
            base,
            &base.join("tmp"),
            &base.join("records/ab/r.json"),
            b"r",
        )
        .unwrap();
        assert_eq!(std::fs::read(base.join("records/ab/r.json")).unwrap(), b"r");
        assert_eq!(std::fs::read_dir(base.join("tmp")).unwrap().count(), 0);
    }

    #[test]
    fn joins_stay_inside() {
        let base = Path::new("/book/src");
        assert_eq!(
            join_inside(base, Path::new("a/./b/../c")),
            Some(PathBuf::from("/book/src/a/c"))
        );
        assert_eq!(join_inside(base, Path::new("a/../../x")), None);
        assert_eq!(join_inside(base, Path::new("/etc")), None);
        assert_eq!(join_inside(base, Path::new("")), Some(base.to_owned()));
        assert!(check_confined(base, Path::new("/elsewhere")).is_err());
    }
}
