//! Work done while mdBook is still writing the book to stdin. mdBook writes it in many small
//! pieces, so most of a warm build's time is spent waiting for the input; a second thread
//! parses each chapter as it arrives and looks its images up in the local cache, so that the
//! `parse` and `lookup` stages find their answers ready when the last byte is in. It is only
//! a head start: every result is checked against the book as finally read, and anything it
//! could not do (a bad setting, a chapter that came differently) is done by the stages
//! themselves, with their errors.

use std::collections::HashMap;
use std::sync::mpsc;
use std::thread::JoinHandle;

use serde_json::Value;

use super::Book;
use super::image::Ready;
use super::lookup;
use super::parse::Parsed;
use crate::cache::Cache;
use crate::cache::key::CacheKey;
use crate::directive;
use crate::request::Chain;

/// What the head start got done.
#[derive(Default)]
pub(crate) struct Prepared {
    /// Whether it was prepared for mdBook 0.4's Markdown options.
    pub(crate) sections: bool,
    /// The cache, opened and with the shards looked at so far read.
    pub(crate) cache: Option<Cache>,
    /// Chapters that may hold directives, by their position in the book.
    pub(crate) parsed: HashMap<usize, Parsed>,
    /// Each job's image in the local cache, as [`lookup::local`] finds it.
    pub(crate) local: HashMap<CacheKey, Option<(usize, Ready)>>,
}

enum Message {
    Context(Value),
    /// A chapter that may hold a directive.
    Content(String),
    /// A chapter that cannot: only counted.
    Plain,
}

/// The head start, running beside the reader.
pub(crate) struct Prefetch {
    sender: Option<mpsc::Sender<Message>>,
    worker: Option<JoinHandle<Prepared>>,
}

impl Prefetch {
    pub(crate) fn start() -> Prefetch {
        let (sender, receiver) = mpsc::channel();
        let worker = std::thread::Builder::new()
            .name("imagegen-prefetch".into())
            .spawn(move || work(&receiver))
            .ok();
        Prefetch {
            sender: worker.is_some().then_some(sender),
            worker,
        }
    }

    /// Hands over the context, as soon as it is read.
    pub(crate) fn context(&self, context: &Value) {
        self.send(Message::Context(context.clone()));
    }

    /// Hands over a chapter's content, as soon as it is read (copied only when it may hold a
    /// directive).
    pub(crate) fn chapter(&self, content: &str) {
        self.send(if directive::may_contain(content) {
            Message::Content(content.to_owned())
        } else {
            Message::Plain
        });
    }

    fn send(&self, message: Message) {
        if let Some(sender) = &self.sender {
            // A worker that stopped early is not waited for; the stages do its part.
            let _ = sender.send(message);
        }
    }

    /// Waits for the worker to finish the chapters it was given.
    pub(crate) fn finish(mut self) -> Prepared {
        self.sender = None;
        self.worker
            .take()
            .and_then(|worker| worker.join().ok())
            .unwrap_or_default()
    }
}

/// Looks a directive's image up, and, when it is here and the directive asks for a dark twin,
/// the twin its image would have (a guess: the figure may show another image once judged; a
/// wrong guess is only a lookup the twin's round does again).
fn look_ahead(
    book: &Book<'_>,
    cache: &mut Cache,
    directive: &directive::Directive,
    chain: &Chain,
    local: &mut HashMap<CacheKey, Option<(usize, Ready)>>,
) -> crate::error::Result<()> {
    let key = chain[0].0;
    if let std::collections::hash_map::Entry::Vacant(entry) = local.entry(key) {
        entry.insert(lookup::local_one(book, cache, chain)?);
    }
    let (Some(Some((_, light))), Some(twin)) = (
        local.get(&key),
        crate::request::dark::Twin::of(directive, book.config),
    ) else {
        return Ok(());
    };
    let mut image = super::references::unread(cache, light.tier, &light.entry);
    crate::request::dark::LIGHT.clone_into(&mut image.label);
    if let Ok(twin) = crate::request::dark::chain(directive, book.config, &twin, chain, &image)
        && !local.contains_key(&twin[0].0)
    {
        let found = lookup::local_one(book, cache, &twin)?;
        local.insert(twin[0].0, found);
    }
    Ok(())
}

fn work(receiver: &mpsc::Receiver<Message>) -> Prepared {
    let Ok(Message::Context(context)) = receiver.recv() else {
        return Prepared::default();
    };
    let Ok((ctx, config)) = super::input::Opened::settings(&context, false) else {
        return Prepared::default();
    };
    if ctx.renderer == "test" {
        return Prepared::default();
    }
    // mdBook 0.4 passes chapters under `sections`, with its own Markdown options.
    let sections = ctx.mdbook_version.starts_with("0.4");
    let book = Book::new(&ctx, &config, sections);
    // Opened at the first chapter with a directive: a book without any never waits for the
    // index.
    let mut cache: Option<Cache> = None;
    let mut prepared = Prepared {
        sections,
        ..Prepared::default()
    };
    let mut usable = true;
    for (ordinal, message) in receiver.iter().enumerate() {
        let Message::Content(content) = message else {
            continue;
        };
        let (directives, problems) = directive::parse(&content, &book.markdown);
        let chains: Vec<Option<Result<Chain, String>>> = directives
            .iter()
            .map(|directive| {
                (directive.attrs.variants.is_none()
                    && !crate::request::needs_references(directive, &config))
                .then(|| crate::request::chain(directive, &config, &[]))
            })
            .collect();
        for (directive, chain) in directives.iter().zip(&chains) {
            let Some(Ok(chain)) = chain else { continue };
            if !usable {
                break;
            }
            let cache = cache.get_or_insert_with(|| Cache::of_book(&book.ctx.root, book.config));
            // The `lookup` stage meets the same problem and reports it.
            usable = look_ahead(&book, cache, directive, chain, &mut prepared.local).is_ok();
        }
        prepared.parsed.insert(
            ordinal,
            Parsed {
                content,
                directives,
                problems,
                chains,
            },
        );
    }
    prepared.cache = cache;
    prepared
}
