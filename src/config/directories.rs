//! Where images are kept: `cache-dir` (normalized, inside the book) and `assets-dir` (inside the
//! source directory), and `Config`'s check, once the book's layout is known, that the cache stays
//! out of the source and build directories.

use std::path::{Component, Path, PathBuf};

use super::{Config, Invalid, RawConfig};
use crate::error::{Error, Result};

impl Config {
    /// Checks where the cache lives against the book's layout: inside the book root, and
    /// outside its source directory (whose files are published) and its build directory
    /// (which every build empties).
    pub(crate) fn check_layout(&self, src: &str, build_dir: &str) -> Result<()> {
        // Already inside the book and normalized when the table was read.
        let cache = &self.cache_dir;
        for (name, dir) in [("source", src), ("build", build_dir)] {
            let Some(dir) = crate::files::join_inside(Path::new(""), Path::new(dir)) else {
                continue;
            };
            if dir.as_os_str().is_empty() || cache.starts_with(&dir) || dir.starts_with(cache) {
                return Err(Error::Config {
                    key: "preprocessor.imagegen.cache-dir".into(),
                    message: format!(
                        "`{}` overlaps the book's {name} directory `{}`, which {}; use a directory of its own, such as `.imagegen`",
                        cache.display(),
                        dir.display(),
                        if name == "source" {
                            "is published with the book"
                        } else {
                            "every build empties"
                        }
                    ),
                });
            }
        }
        Ok(())
    }
}

/// `cache-dir` (kept normalized, inside the book) and `assets-dir` (inside the source directory).
pub(super) fn directories(raw: &mut RawConfig) -> std::result::Result<(PathBuf, String), Invalid> {
    let config_error = |key: &str, message: String| (key.to_owned(), message);
    let cache_dir = PathBuf::from(
        raw.cache_dir
            .take()
            .unwrap_or_else(|| ".imagegen".to_owned()),
    );
    if cache_dir.as_os_str().is_empty() {
        return Err(config_error(
            "cache-dir",
            "the path is empty; remove the key to use `.imagegen`".into(),
        ));
    }
    // Kept normalized (`./a/../b` is `b`), so that it compares with the book's directories.
    let cache_dir = crate::files::join_inside(Path::new(""), &cache_dir)
        .filter(|dir| !dir.as_os_str().is_empty())
        .ok_or_else(|| {
            config_error(
                "cache-dir",
                format!(
                    "`{}` is not a directory inside the book; use a relative path such as `.imagegen`",
                    cache_dir.display()
                ),
            )
        })?;

    let assets_dir = raw
        .assets_dir
        .take()
        .unwrap_or_else(|| "imagegen".to_owned());
    let assets_dir = assets_dir.trim_matches('/').to_owned();
    if assets_dir.is_empty()
        || !Path::new(&assets_dir)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
    {
        return Err(config_error(
            "assets-dir",
            format!(
                "`{assets_dir}` must be a relative path inside the book's source directory, such as `imagegen`"
            ),
        ));
    }

    Ok((cache_dir, assets_dir))
}
