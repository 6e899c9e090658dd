//! The command line: its commands and their arguments.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

/// An mdBook preprocessor that turns image prompts into figures.
///
/// mdBook runs it: add `[preprocessor.imagegen]` to `book.toml` and write ```image-prompt
/// blocks in your chapters. Run by hand, it reads mdBook's JSON on stdin and writes the book on
/// stdout.
#[derive(Debug, Parser)]
#[command(version, about, long_about = None)]
pub(crate) struct Cli {
    #[command(subcommand)]
    pub(crate) command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub(crate) enum Command {
    /// Tells mdBook whether a renderer is supported (exit status 0: yes).
    Supports {
        /// The renderer's name, such as `html`.
        renderer: String,
    },
    /// Shows what a build would generate and reuse, per directive, with the estimated cost.
    /// Calls no provider.
    Plan {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Fills the cache without building the book: generates every missing image and makes
    /// its web files. Exits non-zero if any directive failed.
    Generate {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
    },
    /// Lists the images in the cache with the chapters that use them.
    List {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Counts, cost and generation time per provider and model, over the whole cache.
    Stats {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Deletes the images no directive uses any more: records, masters, tuned qualities,
    /// descriptions and web files. Prints what and how many bytes.
    Gc {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Print what would be deleted, and delete nothing.
        #[arg(long)]
        dry_run: bool,
        /// Clean the shared remote cache too (`[preprocessor.imagegen.storage]`). It is shared
        /// by every branch and machine, so only images no directive of this checkout uses and
        /// older than `--grace` go.
        #[arg(long)]
        remote: bool,
        /// With `--remote`: keep unused remote images younger than this (`7d`, `12h`, `0s`),
        /// so that branches in flight keep theirs.
        #[arg(long, default_value = "7d", requires = "remote", value_parser = humantime::parse_duration)]
        grace: std::time::Duration,
        /// Print JSON instead of a list.
        #[arg(long)]
        json: bool,
    },
    /// Uploads the local cache to the shared remote cache (`[preprocessor.imagegen.storage]`):
    /// every master, record, tuned quality and description the remote lacks, masters first. Moves a
    /// git-committed cache into a bucket, and finishes uploads an outage interrupted.
    Push {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Print JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Checks the cache: every master matches its name, every record reads and has its
    /// master, the index agrees with the records. Exits non-zero when anything is wrong.
    Verify {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Repair what can be repaired, and say what cannot.
        #[arg(long)]
        fix: bool,
        /// Check the shared remote cache instead (downloads every master once; repairs
        /// nothing).
        #[arg(long, conflicts_with = "fix")]
        remote: bool,
        /// Print JSON instead of a list.
        #[arg(long)]
        json: bool,
    },
    /// Generates new images for a chapter, a cache-key prefix, or the directives whose image
    /// is missing (`--failed`), even when cached. The old masters stay until `gc`.
    Regenerate(Regenerate),
    /// Writes a self-contained HTML page showing every image of the book at a glance
    /// (thumbnail, prompt, alt text, caption, provider, model, size, cost, chapter, problems).
    Review {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Where to write the page.
        #[arg(long, default_value = "imagegen-review.html")]
        out: PathBuf,
    },
    /// Shows candidate N of a directive's `variants` in its figure: records the choice in a
    /// committed file (`.imagegen/picks/`), so the next build uses it with no provider call.
    Pick {
        /// The directive, as `plan` prints its place (`src/b/b.md:7`), or at least 4 hex
        /// digits of one of its candidates' keys.
        selector: String,
        /// The candidate to show, from 1 (the review page numbers them).
        number: u32,
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Print JSON instead of a sentence.
        #[arg(long)]
        json: bool,
    },
    /// Lists the directives whose author wrote no alt text, with the alt their figure shows
    /// (written by the describer, or derived from the prompt); `--write` puts it into each
    /// directive's `alt="…"`, to review in a diff and own from then on.
    Alt {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Write each shown alt into its directive's info string in the Markdown.
        #[arg(long)]
        write: bool,
        /// Print JSON instead of a list.
        #[arg(long)]
        json: bool,
    },
    /// Generates through the providers' batch APIs: half the price, answered within 24 hours.
    /// `submit` on one machine, `collect` on any (the batch files under `.imagegen/batches/`
    /// are committed).
    Batch {
        #[command(subcommand)]
        command: BatchCommand,
    },
    /// Rebuilds the cache index from the records.
    Reindex {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
    },
    /// Adds `[preprocessor.imagegen]` (with `after = ["links"]`) to book.toml, keeping its
    /// comments and formatting, and creates the cache directory with its `.gitignore`.
    Install {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
    },
    /// Lists the models this version knows: each one's state today (current, deprecated with
    /// its shutdown date, or retired), its replacement, what it takes, and where and when that
    /// was read.
    Models {
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Used by `plan` and `generate`: saves mdBook's input to a file and stops the build.
    #[command(name = "__capture", hide = true)]
    Capture {
        file: PathBuf,
        /// `supports <renderer>`, when mdBook asks.
        rest: Vec<String>,
    },
}

/// What `regenerate` makes again.
#[derive(Debug, clap::Args)]
pub(crate) struct Regenerate {
    /// A chapter file (`src/guide/intro.md` or `guide/intro.md`) or the start of a cache
    /// key (at least 4 hex digits, as `list` and `plan --json` show them).
    pub(crate) selector: Option<String>,
    /// Every directive whose image is not in the cache.
    #[arg(long, conflicts_with = "selector")]
    pub(crate) failed: bool,
    /// Send the new images to the providers' batch APIs (half price, within 24 hours)
    /// instead of generating them now; `batch collect` stores them.
    #[arg(long)]
    pub(crate) batch: bool,
    /// The book's root directory (where `book.toml` is).
    #[arg(long, default_value = ".")]
    pub(crate) book: PathBuf,
}

/// What `batch` does.
#[derive(Debug, Subcommand)]
pub(crate) enum BatchCommand {
    /// Sends every image the book lacks that a batch-capable profile would make, after checking
    /// the budget at the batch price; writes one file per batch under `.imagegen/batches/`.
    Submit {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// The most the submission may cost, in US dollars at the batch price (else
        /// `max-cost-per-build`).
        #[arg(long)]
        max_cost: Option<f64>,
        /// Print JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
    /// Shows each batch: provider, state, done/failed/total, when it was sent and expires.
    Status {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Print JSON instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Stores what finished batches made in the cache, reports the lines that failed (the next
    /// `submit` sends them again), and removes the batch files it is done with.
    Collect {
        /// The book's root directory (where `book.toml` is).
        #[arg(long, default_value = ".")]
        book: PathBuf,
        /// Wait until every batch is finished, asking every `--poll`.
        #[arg(long)]
        wait: bool,
        /// With `--wait`: how long between two questions (`30s`, `5m`).
        #[arg(long, default_value = "60s", value_parser = humantime::parse_duration)]
        poll: std::time::Duration,
        /// Print JSON instead of a summary.
        #[arg(long)]
        json: bool,
    },
}
