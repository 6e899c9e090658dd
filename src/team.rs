//! The team commands that look after the cache: `list`, `stats`, `gc` (in `team/gc.rs`),
//! `verify`, `reindex`. Each one starts from mdBook's input for the book, so it sees the
//! directives a build sees.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde::Serialize;

mod alt;
mod claims;
mod gc;
mod pick;
mod remote;
pub use alt::{MissingAlt, WrittenAlt};
pub use claims::RemoteClaim;
pub use pick::Picked;
pub use remote::{Pushed, RemoteObject, RemoteStats};

use crate::assets;
use crate::cache::key::CacheKey;
use crate::cache::{self, Cache};
use crate::config::Config;
use crate::error::Result;
use crate::judgement::{Mark, Record as Judgement};
use crate::pipeline::{ImageGen, Planned, PlannedImage, prompt_start};

/// A book's cache, with the directives that use it.
pub struct Team {
    root: PathBuf,
    cache_root: PathBuf,
    /// The book's source directory, as mdBook names it (`src`), and its path.
    src: String,
    src_dir: PathBuf,
    assets_dir: PathBuf,
    config: Config,
    /// What `plan` finds for each directive, in book order.
    planned: Vec<Planned>,
    /// The same, as `plan` prints it.
    rows: Vec<PlannedImage>,
}

/// One image in the cache, as `list` shows it.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct ListedImage {
    /// The cache key, in hex.
    pub key: String,
    /// The provider kind and model that made it.
    pub provider: String,
    /// The model that made it.
    pub model: String,
    /// `WIDTHxHEIGHT` of the master.
    pub size: String,
    /// Its estimated cost in US dollars when it was generated.
    pub cost: f64,
    /// When it was generated, RFC 3339.
    pub created_at: String,
    /// The chapter files whose directives use it; empty when none does (`gc` removes it).
    pub chapters: Vec<String>,
    /// Whether it is a placeholder, kept on this machine only.
    pub local: bool,
    /// The start of the prompt.
    pub prompt: String,
    /// The reference images it was made from, as the author named them (`#id` for another
    /// directive's image; for an edit, the image it edits).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<String>,
    /// Which candidate of a directive's `variants` it is, from 2 (the first has none).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub candidate: Option<u32>,
    /// Which new attempt of `[judge] mode = "gate"` it is, from 1.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retry: Option<u32>,
    /// For a dark twin: the hash of the light image's master it is the twin of.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dark_of: Option<String>,
    /// With a judge: the score of its judgement, 0 to 1, when kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub score: Option<f64>,
    /// With a judge: `pass` or `review` (by `min-score`), when its judgement is kept.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verdict: Option<&'static str>,
}

/// Totals for one provider and model, as `stats` shows them.
#[derive(Debug, Default, Serialize)]
#[non_exhaustive]
pub struct Stat {
    /// The provider kind.
    pub provider: String,
    /// The model.
    pub model: String,
    /// How many images it made.
    pub images: usize,
    /// Their estimated cost in US dollars.
    pub cost: f64,
    /// Their average generation time, in seconds.
    pub average_seconds: f64,
    /// How many requests they took, retries included.
    pub requests: u64,
}

/// The dark twins among the cache's images, as `stats` shows them.
#[derive(Debug, Default, Serialize)]
#[non_exhaustive]
pub struct DarkStat {
    /// How many images are dark twins.
    pub images: usize,
    /// Their estimated cost in US dollars (counted in their models' rows too).
    pub cost: f64,
}

/// Totals for one describer model, as `stats` shows them.
#[derive(Debug, Default, Serialize)]
#[non_exhaustive]
pub struct DescriptionStat {
    /// The describer's provider kind.
    pub provider: String,
    /// The describer's model.
    pub model: String,
    /// How many descriptions it wrote.
    pub descriptions: usize,
    /// Their estimated cost in US dollars.
    pub cost: f64,
    /// How many requests they took, retries included.
    pub requests: u64,
}

/// Totals for one judge model, as `stats` shows them.
#[derive(Debug, Default, Serialize)]
#[non_exhaustive]
pub struct JudgementStat {
    /// The judge's provider kind.
    pub provider: String,
    /// The judge's model.
    pub model: String,
    /// How many images it judged.
    pub judgements: usize,
    /// Their estimated cost in US dollars.
    pub cost: f64,
    /// How many requests they took, retries included.
    pub requests: u64,
    /// The average score.
    pub average_score: f64,
    /// How many scored below the book's `min-score`.
    pub review: usize,
}

/// A file `verify` found wrong.
#[derive(Debug, Serialize)]
#[non_exhaustive]
pub struct VerifyProblem {
    /// The file.
    pub path: PathBuf,
    /// What is wrong and what to do.
    pub what: String,
    /// Whether `--fix` repaired it (or would).
    pub fixable: bool,
}

impl ImageGen {
    /// Loads the cache of the book mdBook's input describes.
    pub fn team(&self, input: &str) -> Result<Team> {
        let book = crate::pipeline::planned_book(input)?;
        Ok(Team {
            cache_root: book.root.join(&book.config.cache_dir),
            src_dir: book.root.join(&book.src),
            src: book.src.clone(),
            assets_dir: book.assets_dir,
            root: book.root,
            config: book.config,
            rows: book.planned.iter().map(PlannedImage::from).collect(),
            planned: book.planned,
        })
    }
}

impl Team {
    /// The directives of the book, as `plan` sees them.
    pub fn directives(&self) -> &[PlannedImage] {
        &self.rows
    }

    /// Which chapters use each key (any link of a directive's chain).
    /// Fails while a directive waits for images a build makes first: its keys are not known
    /// yet, so the images it uses would look unused to `gc`.
    fn uses_are_known(&self) -> Result<()> {
        match self.planned.iter().find(|p| p.provisional()) {
            Some(p) => Err(crate::error::Error::Request(format!(
                "`{}:{}` waits for images a build makes first, so what it uses is not known yet; build the book, then run `gc`",
                crate::outside::for_terminal(&p.file),
                p.line
            ))),
            None => Ok(()),
        }
    }

    fn users(&self) -> BTreeMap<CacheKey, BTreeSet<&str>> {
        let mut users: BTreeMap<CacheKey, BTreeSet<&str>> = BTreeMap::new();
        for p in &self.planned {
            for key in p.job.iter().flat_map(|job| job.used()) {
                users.entry(key).or_default().insert(&p.file);
            }
        }
        users
    }

    /// Every key a directive uses or keeps.
    fn in_use(&self) -> BTreeSet<CacheKey> {
        self.users().into_keys().collect()
    }

    /// Every image in the cache (the winner of each key), oldest first.
    pub fn list(&self) -> Result<Vec<ListedImage>> {
        let mut cache = Cache::of_book(&self.root, &self.config);
        let judge = self.config.judge_id();
        let winners = cache.winners()?;
        let users = self.users();
        let mut out = Vec::new();
        for stored in cache.stored_records()? {
            let Ok(record) = &stored.record else { continue };
            if !winners.contains(&stored.path) {
                continue;
            }
            out.push(ListedImage {
                key: record.key.clone(),
                provider: record.provider.clone(),
                model: record.model.clone(),
                size: format!("{}x{}", record.width, record.height),
                cost: record.cost_usd,
                created_at: record.created_at.clone(),
                chapters: record
                    .cache_key()
                    .and_then(|key| users.get(&key))
                    .map(|c| c.iter().map(|s| (*s).to_owned()).collect())
                    .unwrap_or_default(),
                local: stored.tier == cache::Tier::Local,
                prompt: prompt_start(&record.prompt),
                references: record.references.iter().map(|r| r.label.clone()).collect(),
                candidate: record.candidate,
                retry: record.retry,
                dark_of: record.dark_of.clone(),
                score: None,
                verdict: None,
            });
            if let Some(judgement) = judge
                .as_deref()
                .and_then(|id| cache.note::<Judgement>(&record.master, id))
            {
                let listed = out.last_mut().expect("just pushed");
                listed.score = Some(judgement.score);
                listed.verdict = Some(self.mark(judgement.score).as_str());
            }
        }
        out.sort_by(|a, b| (&a.created_at, &a.key).cmp(&(&b.created_at, &b.key)));
        Ok(out)
    }

    /// Totals per provider and model over every record in the cache (every image ever
    /// generated and kept, losers of a key included: they were paid for too).
    pub fn stats(&self) -> Result<Vec<Stat>> {
        let cache = Cache::of_book(&self.root, &self.config);
        let records = cache.stored_records()?.into_iter();
        let tallies = per_model(records.filter_map(|stored| stored.record.ok()).map(|r| {
            let paid = (r.cost_usd, r.attempts, r.generation_ms);
            ((r.provider, r.model), paid)
        }));
        Ok(tallies
            .into_iter()
            .map(|((provider, model), tally)| Stat {
                provider,
                model,
                images: tally.count,
                cost: tally.cost,
                average_seconds: tally.ms as f64 / 1000.0 / tally.count.max(1) as f64,
                requests: tally.requests,
            })
            .collect())
    }

    /// How many of the cache's images are dark twins, and what they cost (in `stats` too).
    pub fn dark_stats(&self) -> Result<DarkStat> {
        let cache = Cache::of_book(&self.root, &self.config);
        let mut stat = DarkStat::default();
        for record in cache
            .stored_records()?
            .into_iter()
            .filter_map(|s| s.record.ok())
        {
            if record.dark_of.is_some() {
                stat.images += 1;
                stat.cost += record.cost_usd;
            }
        }
        Ok(stat)
    }

    /// Totals per describer model over every description kept (all were paid for).
    pub fn description_stats(&self) -> Result<Vec<DescriptionStat>> {
        let stored = Cache::of_book(&self.root, &self.config)
            .stored_notes::<crate::description::Record>()?;
        let tallies = per_model(
            stored
                .into_iter()
                .filter_map(|(_, read)| read.ok())
                .map(|r| {
                    let paid = (r.cost_usd, r.attempts, 0);
                    ((r.provider, r.model), paid)
                }),
        );
        Ok(tallies
            .into_iter()
            .map(|((provider, model), tally)| DescriptionStat {
                provider,
                model,
                descriptions: tally.count,
                cost: tally.cost,
                requests: tally.requests,
            })
            .collect())
    }

    /// Totals per judge model over every judgement kept (all were paid for).
    pub fn judgement_stats(&self) -> Result<Vec<JudgementStat>> {
        let stored = Cache::of_book(&self.root, &self.config).stored_notes::<Judgement>()?;
        let mut stats: BTreeMap<(String, String), JudgementStat> = BTreeMap::new();
        for record in stored.into_iter().filter_map(|(_, read)| read.ok()) {
            let stat = stats
                .entry((record.provider.clone(), record.model.clone()))
                .or_insert_with(|| JudgementStat {
                    provider: record.provider.clone(),
                    model: record.model.clone(),
                    ..JudgementStat::default()
                });
            stat.judgements += 1;
            stat.cost += record.cost_usd;
            stat.requests += u64::from(record.attempts);
            stat.average_score += record.score;
            stat.review += usize::from(self.mark(record.score) == Mark::Review);
        }
        Ok(stats
            .into_values()
            .map(|mut stat| {
                stat.average_score /= stat.judgements.max(1) as f64;
                stat
            })
            .collect())
    }

    /// A score's verdict under the book's `min-score` (0.8 without a judge).
    fn mark(&self, score: f64) -> Mark {
        let min = self.config.judge.as_ref().map_or(0.8, |j| j.min_score);
        Mark::of(score, min)
    }

    /// The judgement kept of a key's image by the book's judge.
    pub(crate) fn judgement(
        &self,
        cache: &mut Cache,
        tier: cache::Tier,
        key: CacheKey,
    ) -> Result<Option<Judgement>> {
        let Some(id) = self.config.judge_id() else {
            return Ok(None);
        };
        Ok(cache
            .lookup(tier, key)?
            .and_then(|entry| cache.note::<Judgement>(&entry.master, &id)))
    }

    /// Checks the cache; with `fix`, repairs what can be repaired.
    pub fn verify(&self, fix: bool) -> Result<Vec<VerifyProblem>> {
        let mut cache = Cache::of_book(&self.root, &self.config);
        let problems = cache.verify()?;
        drop(cache);
        let mut reindex = false;
        for problem in &problems {
            if fix && problem.fixable {
                if problem.path.ends_with("index.redb") {
                    reindex = true;
                } else {
                    cache::remove(&self.cache_root, &problem.path)?;
                    reindex = true;
                }
            }
        }
        if reindex {
            Cache::reindex(&self.cache_root)?;
        }
        Ok(problems
            .into_iter()
            .map(|p| VerifyProblem {
                path: p.path,
                what: p.what,
                fixable: p.fixable,
            })
            .collect())
    }

    /// A self-contained HTML page that shows every directive of the book at a glance: its
    /// image (a thumbnail, inlined), prompt, alt text, caption, provider, model, size, cost,
    /// chapter and status, failures first.
    pub fn review(&self, title: &str) -> Result<String> {
        let mut cache = Cache::of_book(&self.root, &self.config);
        let esc = crate::figure::escape_html;
        let mut rows: Vec<(&Planned, &PlannedImage)> =
            self.planned.iter().zip(&self.rows).collect();
        // Failures first, then the figures a judge sent to review (lowest score first).
        rows.sort_by(|(_, a), (_, b)| {
            let rank = |r: &PlannedImage| {
                (
                    !r.status.is_failure(),
                    r.verdict != Some("review"),
                    r.score.map_or(2.0, |s| s),
                )
            };
            rank(a)
                .partial_cmp(&rank(b))
                .unwrap_or(std::cmp::Ordering::Equal)
        });
        let mut cards = String::new();
        let mut total = 0.0;
        for (planned, row) in &rows {
            let (card, cost) = self.card(&mut cache, planned, row)?;
            cards.push_str(&card);
            total += cost.unwrap_or(0.0);
        }
        let problems = rows.iter().filter(|(_, r)| r.status.is_failure()).count();
        Ok(format!(
            "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><meta name=\"viewport\" content=\"width=device-width\"><title>Images of {title}</title><style>{css}</style></head><body><header><h1>Images of {title}</h1><p>{n} directive{s}, {problems} with problems; ${total:.2} spent on the images shown.</p></header><main>\n{cards}</main></body></html>\n",
            title = esc(title),
            css = REVIEW_CSS,
            n = rows.len(),
            s = if rows.len() == 1 { "" } else { "s" },
        ))
    }

    /// One directive's card on the review page, and what its image cost.
    fn card(
        &self,
        cache: &mut Cache,
        planned: &Planned,
        row: &PlannedImage,
    ) -> Result<(String, Option<f64>)> {
        let esc = crate::figure::escape_html;
        let mut picture = String::from("<div class=\"none\">no image yet</div>");
        let mut cost = None;
        let mut described = None;
        let mut judged = None;
        let own = planned.job.as_ref().and_then(|j| Some((j.tier, j.key()?)));
        if let Some((tier, key)) = own
            && let Some(entry) = cache.lookup(tier, key)?
        {
            if let (None, Some(id)) = (&row.alt, self.config.describer_id()) {
                described = cache.note::<crate::description::Record>(&entry.master, &id);
            }
            if let Some(id) = self.config.judge_id() {
                judged = cache.note::<Judgement>(&entry.master, &id);
            }
            let alt = row
                .alt
                .as_deref()
                .or(described.as_ref().map(|d| d.alt.as_str()));
            picture = thumbnail_html(cache, tier, &entry, alt.unwrap_or(""));
            cost = self.record_cost(cache, tier, &entry).or(row.cost);
        }
        let field = |name: &str, value: &str| {
            if value.trim().is_empty() {
                String::new()
            } else {
                format!("<dt>{name}</dt><dd>{}</dd>", esc(value))
            }
        };
        let candidates = self.candidates_html(cache, planned)?;
        let twin = twin_html(cache, planned)?;
        let card = format!(
            "<article class=\"{status}{review}\">{picture}<div class=\"text\"><p class=\"where\">{file}:{line} <span class=\"status\">{status}</span></p><p class=\"prompt\">{prompt}</p><dl>{alt}{description}{caption}{provider}{size}{references}{edit}{cost}{message}{judgement}</dl></div>{candidates}{twin}</article>\n",
            status = row.status,
            review = if row.verdict == Some("review") {
                " review"
            } else {
                ""
            },
            judgement = judged
                .as_ref()
                .map_or_else(String::new, |j| self.judgement_html(j)),
            file = esc(&row.file),
            line = row.line,
            prompt = esc(&row.prompt),
            alt = match (&row.alt, &described) {
                (Some(alt), _) => field("alt", alt),
                (None, Some(d)) => field("alt (described)", &format!("{} — {}", d.alt, d.model)),
                (None, None) => field("alt", "— missing —"),
            },
            description = field(
                "description",
                described.as_ref().map_or("", |d| d.description.as_str())
            ),
            caption = field("caption", row.caption.as_deref().unwrap_or("")),
            provider = field("made by", &format!("{} {}", row.provider, row.model)),
            size = field("size", &row.size),
            references = field("made from", &row.references.join(", ")),
            edit = field("edit", row.edit.as_deref().unwrap_or("")),
            cost = field(
                "cost",
                &cost.map(|c| format!("${c:.3}")).unwrap_or_default()
            ),
            message = field("problem", row.message.as_deref().unwrap_or("")),
        );
        Ok((card, cost))
    }

    /// A judgement beside its figure on the review page: the score and verdict, the questions
    /// answered no, the defects and the text read back. Every text escaped.
    fn judgement_html(&self, judgement: &Judgement) -> String {
        let esc = crate::figure::escape_html;
        let mut html = format!(
            "<dt>score</dt><dd class=\"score\">{:.2} ({}) — {}</dd>",
            judgement.score,
            self.mark(judgement.score).as_str(),
            esc(&judgement.model)
        );
        let failed: Vec<String> = judgement.failed().map(|c| esc(&c.question)).collect();
        if !failed.is_empty() {
            html.push_str(&format!(
                "<dt>failed checks</dt><dd><ul><li>{}</li></ul></dd>",
                failed.join("</li><li>")
            ));
        }
        let defects: Vec<String> = judgement
            .defects
            .iter()
            .map(|d| {
                format!(
                    "{} {}: {}",
                    if d.major { "major" } else { "minor" },
                    esc(&d.kind),
                    esc(&d.place)
                )
            })
            .collect();
        if !defects.is_empty() {
            html.push_str(&format!(
                "<dt>defects</dt><dd><ul><li>{}</li></ul></dd>",
                defects.join("</li><li>")
            ));
        }
        if let Some(seen) = &judgement.text_seen {
            html.push_str(&format!("<dt>text seen</dt><dd>{}</dd>", esc(seen)));
        }
        html
    }

    /// A directive's candidates, each with its number, a thumbnail and the `pick` command that
    /// shows it; nothing for a directive without `variants`.
    fn candidates_html(&self, cache: &mut Cache, planned: &Planned) -> Result<String> {
        use std::fmt::Write as _;
        let esc = crate::figure::escape_html;
        let Some((tier, variants)) = planned.variants() else {
            return Ok(String::new());
        };
        let mut html = String::from("<ol class=\"candidates\">");
        for (i, key) in variants.candidates.iter().enumerate() {
            let number = i as u32 + 1;
            let picture = match cache.lookup(tier, *key)? {
                Some(entry) => thumbnail_html(cache, tier, &entry, ""),
                None => String::from("<div class=\"none\">no image yet</div>"),
            };
            let shown = variants.picked == number;
            let score = self
                .judgement(cache, tier, *key)?
                .map(|j| format!(" — score {:.2}", j.score))
                .unwrap_or_default();
            // Quoted for a shell when the path has anything but the usual characters.
            let place = format!("{}:{}", planned.file, planned.line);
            let place = if place
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "/._-:".contains(c))
            {
                place
            } else {
                format!("'{}'", place.replace('\'', "'\\''"))
            };
            let _ = write!(
                html,
                "<li{class}>{picture}<p>{number}{note}{score}</p><code>mdbook-imagegen pick {place} {number}</code></li>",
                class = if shown { " class=\"shown\"" } else { "" },
                note = if shown { " (shown)" } else { "" },
                place = esc(&place),
            );
        }
        html.push_str("</ol>");
        Ok(html)
    }

    /// The cost its record says an image had.
    fn record_cost(&self, cache: &Cache, tier: cache::Tier, entry: &cache::Entry) -> Option<f64> {
        let record = cache::read_record(&cache.record_path(tier, entry)).ok()?;
        Some(record.cost_usd)
    }

    /// Rebuilds the index from the records; returns how many keys it holds.
    pub fn reindex(&self) -> Result<usize> {
        Cache::reindex(&self.cache_root)
    }
}

/// A directive's dark twin on the review page: its thumbnail and what a build does for it.
fn twin_html(cache: &mut Cache, planned: &Planned) -> Result<String> {
    let esc = crate::figure::escape_html;
    let Some(dark) = planned.job.as_ref().and_then(|j| j.dark.as_ref()) else {
        return Ok(String::new());
    };
    let entry = match dark.key {
        Some(key) => cache.lookup(dark.tier, key)?,
        None => None,
    };
    let picture = match &entry {
        Some(entry) => thumbnail_html(cache, dark.tier, entry, "dark twin"),
        None => String::from("<div class=\"none\">no image yet</div>"),
    };
    Ok(format!(
        "<figure class=\"twin\">{picture}<figcaption>dark twin: {}</figcaption></figure>",
        esc(dark.message.as_deref().unwrap_or(dark.status.as_str()))
    ))
}

/// A master's thumbnail for the review page, inlined; or why there is none.
fn thumbnail_html(cache: &Cache, tier: cache::Tier, entry: &cache::Entry, alt: &str) -> String {
    use base64::Engine as _;
    let esc = crate::figure::escape_html;
    let path = cache.master_path(tier, entry);
    let Ok(bytes) = crate::files::read_regular(&path, crate::provider::MAX_MASTER_BYTES as u64)
    else {
        return String::from("<div class=\"none\">no image yet</div>");
    };
    match assets::thumbnail(&bytes, 240) {
        Ok(thumb) => format!(
            "<img src=\"data:image/webp;base64,{}\" width=\"240\" height=\"240\" alt=\"{}\">",
            base64::engine::general_purpose::STANDARD.encode(thumb),
            esc(alt)
        ),
        Err(e) => format!("<div class=\"none\">{}</div>", esc(&e)),
    }
}

const REVIEW_CSS: &str = "body{font:15px/1.4 system-ui,sans-serif;margin:0;background:#f6f6f4;color:#222}\
header{padding:16px 24px;background:#fff;border-bottom:1px solid #ddd}h1{font-size:20px;margin:0 0 4px}\
main{display:grid;grid-template-columns:repeat(auto-fill,minmax(520px,1fr));gap:16px;padding:16px 24px}\
article{display:flex;gap:14px;background:#fff;border:1px solid #ddd;border-radius:6px;padding:12px}\
article.error,article.offline,article.over-budget{border-color:#c0392b;background:#fff6f5}\
article.review{border-color:#d68910;background:#fffaf0}dd ul{margin:0;padding-left:16px}\
img,.none{flex:none;width:240px;height:240px;border-radius:4px;object-fit:cover}\
.none{display:flex;align-items:center;justify-content:center;background:#eee;color:#777}\
.text{min-width:0}.where{margin:0;color:#555;font-size:13px}.status{font-weight:600;margin-left:6px}\
.prompt{margin:6px 0;font-weight:500}dl{display:grid;grid-template-columns:auto 1fr;gap:2px 10px;margin:0;font-size:13px}\
dt{color:#777}dd{margin:0;overflow-wrap:anywhere}\
article{flex-wrap:wrap}.candidates{flex-basis:100%;display:flex;flex-wrap:wrap;gap:10px;list-style:none;margin:0;padding:0}\
.candidates li{width:160px;font-size:12px}.candidates img,.candidates .none{width:160px;height:160px}\
.candidates li.shown img{outline:3px solid #2c7be5}.candidates p{margin:4px 0}.candidates code{overflow-wrap:anywhere}\
.twin{flex-basis:100%;margin:0;font-size:12px}.twin img,.twin .none{width:160px;height:160px;background:#222}";

/// What was paid for one provider and model: how many, their cost, requests and time.
#[derive(Default)]
struct Tally {
    count: usize,
    cost: f64,
    requests: u64,
    ms: u64,
}

/// Adds up `(cost, attempts, milliseconds)` per `(provider, model)`, in that order.
fn per_model(
    paid: impl Iterator<Item = ((String, String), (f64, u32, u64))>,
) -> BTreeMap<(String, String), Tally> {
    let mut totals: BTreeMap<(String, String), Tally> = BTreeMap::new();
    for (who, (cost, attempts, ms)) in paid {
        let tally = totals.entry(who).or_default();
        tally.count += 1;
        tally.cost += cost;
        tally.requests += u64::from(attempts);
        tally.ms += ms;
    }
    totals
}
