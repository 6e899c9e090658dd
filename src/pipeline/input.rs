//! The one opening, from mdBook's input to the book every stage reads: for a build, for `plan`
//! and the team commands (which read the book on disk through the same input), and for the
//! head start (which has only the context yet).

use serde_json::Value;

use super::Book;
use crate::config::Config;
use crate::error::Result;
use crate::protocol::{self, Context};

/// mdBook's input, read: its context, the book's settings, and where the chapters are.
pub(crate) struct Opened<'c> {
    pub(crate) ctx: Context<'c>,
    pub(crate) config: Config,
    /// `items` (mdBook 0.5) or `sections` (0.4).
    pub(crate) key: &'static str,
}

impl<'c> Opened<'c> {
    /// Reads the context and the book's settings, and checks the layout they give.
    /// `build` warns when mdBook's version is not the one this was built for.
    pub(crate) fn settings(context: &'c Value, build: bool) -> Result<(Context<'c>, Config)> {
        let ctx = Context::read(context)?;
        if build {
            warn_unsupported(&ctx);
        }
        let config = Config::from_table(ctx.table)?;
        config.check_layout(ctx.src, ctx.build_dir)?;
        Ok((ctx, config))
    }

    /// Reads the context, the book's settings, and where the book keeps its chapters.
    pub(crate) fn read(context: &'c Value, book: &Value, build: bool) -> Result<Opened<'c>> {
        let (ctx, config) = Opened::settings(context, build)?;
        let key = protocol::items_key(book)?;
        Ok(Opened { ctx, config, key })
    }

    /// Whether the chapters come as mdBook 0.4's `sections`, with its Markdown options.
    pub(crate) fn sections(&self) -> bool {
        self.key == "sections"
    }

    /// The book every stage reads.
    pub(crate) fn book(&self) -> Book<'_> {
        Book::new(&self.ctx, &self.config, self.sections())
    }
}

fn warn_unsupported(ctx: &Context<'_>) {
    if !protocol::is_supported(ctx.mdbook_version) {
        tracing::warn!(
            "mdbook-imagegen {} was built for mdBook {}, and this is mdBook {}; if the build misbehaves, upgrade the one that is older",
            env!("CARGO_PKG_VERSION"),
            protocol::SUPPORTED_MDBOOK,
            ctx.mdbook_version
        );
    }
}
