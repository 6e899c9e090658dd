//! Stage 7, render: each directive becomes a figure (or an error figure that says what went
//! wrong and where), spliced into its chapter; the rest of the chapter comes back byte for
//! byte.

use std::collections::BTreeMap;
use std::path::Path;

use super::Book;
use super::describe::Described;
use super::image::Image;
use super::jobs::Plan;
use super::parse::Page;
use super::web_files::{read_asset, write_asset};
use crate::assets::{self, Manifest};
use crate::cache::Entry;
use crate::config::Config;
use crate::description;
use crate::directive::Directive;
use crate::error::Located;
use crate::figure::{self, Figure};
use crate::rewrite::{self, Replacement};

/// The rendered chapters.
pub(crate) struct Rendered {
    /// The new content of each chapter, by its ordinal.
    pub(crate) contents: Vec<(usize, String)>,
    /// The cache keys each chapter uses, for the index.
    pub(crate) refs: BTreeMap<String, Vec<String>>,
    /// Every directive that got an error figure.
    pub(crate) failures: Vec<Located>,
    /// The figures whose alt text their author did not write, and where theirs came from.
    pub(crate) authorless: Vec<(Located, AltFrom)>,
}

/// Where a figure's alt text came from, when its author wrote none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AltFrom {
    /// A vision model described the image.
    Described,
    /// Derived from the prompt.
    Prompt,
}

/// Renders every page.
pub(crate) fn pages(
    book: &Book<'_>,
    pages: &[Page<'_>],
    plan: &Plan,
    images: &[Image],
    described: &Described,
) -> Rendered {
    let mut rendered = Rendered {
        contents: Vec::with_capacity(pages.len()),
        refs: BTreeMap::new(),
        failures: Vec::new(),
        authorless: Vec::new(),
    };
    let style = figure::dark_style(&book.config.dark.themes);
    for (p, (page, uses)) in pages.iter().zip(&plan.uses).enumerate() {
        // The dark themes' CSS goes with the chapter's first figure that has a twin.
        let mut styled = false;
        let mut keys = std::collections::BTreeSet::new();
        let mut used: Vec<&Manifest> = Vec::new();
        let fail = |line: usize, message: &str, failures: &mut Vec<Located>| {
            failures.push(page.at(line, message.to_owned()));
            error_figure(book, &page.file, line, message)
        };
        let mut replacements: Vec<Replacement> = (page.problems.iter())
            .map(|problem| Replacement {
                span: problem.span.clone(),
                text: fail(problem.line, &problem.message, &mut rendered.failures),
                top_level: problem.top_level,
            })
            .collect();
        for (d, (directive, use_)) in page.directives.iter().zip(uses).enumerate() {
            let description = use_.as_ref().ok().and_then(|job| described.by_job.get(job));
            // The index keeps every image the directive needs: the one shown, its other
            // candidates, the image its edit starts from, its dark twin.
            keys.extend(
                plan.jobs_of((p, d))
                    .iter()
                    .map(|&j| plan.jobs[j].key.to_hex()),
            );
            warn_missing_candidates(plan, (p, d), images, &page.file, directive.line);
            let text = match shown(use_, images, description) {
                Ok(mut shown) => {
                    used.push(shown.manifest);
                    let twin = twin(plan, (p, d), images);
                    if let Some(failed) = add_twin(&mut shown, twin, &style, &mut styled, &mut used)
                    {
                        rendered.failures.push(page.at(directive.line, failed));
                    }
                    rendered
                        .authorless
                        .extend(authorless(page, directive, description));
                    if description.is_some() {
                        shown.description_id = description_id(&page.file, directive.line);
                    }
                    figure_of(book, directive, page.path(), &shown)
                }
                Err(message) => fail(directive.line, message, &mut rendered.failures),
            };
            replacements.push(Replacement {
                span: directive.span.clone(),
                text,
                top_level: directive.top_level,
            });
        }
        if let Err(e) = mirror(book, page.path(), &used) {
            let message = format!("cannot copy the chapter's images beside it: {e}");
            rendered.failures.push(page.at(1, message));
        }
        rendered
            .refs
            .insert(page.file.clone(), keys.into_iter().collect());
        rendered.contents.push((
            page.chapter.ordinal,
            rewrite::splice(page.chapter.content, replacements),
        ));
    }
    rendered
}

/// A candidate the figure does not show that could not be made (the budget, a refusal) is not
/// a failed figure, but is said once, with the directive's place, so that nothing goes
/// missing unseen.
fn warn_missing_candidates(
    plan: &Plan,
    at: super::jobs::At,
    images: &[Image],
    file: &str,
    line: usize,
) {
    let Some((candidates, _)) = plan.candidates.get(&at) else {
        return;
    };
    let shown = plan.uses[at.0][at.1].as_ref().ok();
    for (n, job) in candidates.iter().enumerate() {
        if Some(job) != shown
            && let Some(Image::Failed(message)) = images.get(*job)
        {
            tracing::warn!(
                "imagegen: {}:{line}: candidate {} was not made: {message}",
                crate::outside::for_terminal(file),
                n + 1
            );
        }
    }
}

/// The figures whose author wrote no alt: one warning that lists them (a standing accessibility
/// problem stays visible until it is fixed, as a compiler's warnings do); with `require-alt`,
/// returns a failure for each that has no described alt either.
pub(crate) fn alt_check(config: &Config, authorless: &mut [(Located, AltFrom)]) -> Vec<Located> {
    const LISTED: usize = 5;
    if authorless.is_empty() {
        return Vec::new();
    }
    authorless.sort_by(|a, b| (&a.0.file, a.0.line).cmp(&(&b.0.file, b.0.line)));
    let refused = authorless
        .iter()
        .filter(|(_, from)| config.require_alt && *from == AltFrom::Prompt)
        .map(|(located, _)| Located {
            message: "this figure has no alt text (`require-alt = true`); write `alt=\"…\"` in the directive (`alt=\"\"` for a decorative image), or have a describer write it for an image a model made (`alt-text = \"describe\"`)".into(),
            ..located.clone()
        })
        .collect();
    let described = authorless
        .iter()
        .filter(|(_, from)| *from == AltFrom::Described)
        .count();
    let derived = authorless.len() - described;
    let mut places: Vec<String> = authorless
        .iter()
        .take(LISTED)
        .map(|(l, _)| format!("{}:{}", l.file, l.line))
        .collect();
    if authorless.len() > LISTED {
        places.push(format!("and {} more", authorless.len() - LISTED));
    }
    let from = match (described, derived) {
        (0, _) => "derived from the prompt".to_owned(),
        (_, 0) => "written by the describer".to_owned(),
        (d, p) => format!("{d} written by the describer, {p} derived from the prompt"),
    };
    tracing::warn!(
        "imagegen: {} figure{} no alt text from {} author ({from}): {}; run `mdbook-imagegen alt` to review {}, `--write` to keep the wording in the Markdown",
        authorless.len(),
        if authorless.len() == 1 {
            " has"
        } else {
            "s have"
        },
        if authorless.len() == 1 {
            "its"
        } else {
            "their"
        },
        places.join(", "),
        if authorless.len() == 1 { "it" } else { "them" },
    );
    refused
}

/// Copies the web files a chapter in a subdirectory uses into an assets directory beside it.
/// The HTML renderer shows a chapter's figures on its own page, in `print.html` and, for the
/// first chapter, in `index.html`; mdBook rewrites `src` for the last two but not `srcset`.
/// With a copy beside every chapter and one at the root, the same relative URL works on all
/// three pages.
fn mirror(book: &Book<'_>, page_path: &str, used: &[&Manifest]) -> std::io::Result<()> {
    if book.ctx.renderer != "html" || used.is_empty() || book.public_url().is_some() {
        return Ok(());
    }
    let Some(chapter_dir) = Path::new(page_path)
        .parent()
        .filter(|p| !p.as_os_str().is_empty())
    else {
        return Ok(());
    };
    let source = &book.assets_dir;
    let base = book.ctx.root.join(book.ctx.src);
    // A chapter reached through `..` in SUMMARY.md may lie outside the source directory:
    // nothing is written there.
    let dir = crate::files::join_inside(&base, chapter_dir)
        .ok_or_else(|| {
            std::io::Error::new(
                std::io::ErrorKind::PermissionDenied,
                format!(
                    "the chapter `{page_path}` lies outside `{}`; move it inside to show images in it",
                    book.ctx.src
                ),
            )
        })?
        .join(&book.config.assets_dir);
    for file in used.iter().flat_map(|m| &m.files) {
        if file.role == assets::Role::Thumbnail {
            continue;
        }
        let path = dir.join(&file.name);
        if crate::files::regular_len(&path) == Some(file.bytes) {
            continue;
        }
        let bytes = read_asset(source, &file.name)?;
        write_asset(&base, &dir, &path, &bytes)?;
    }
    Ok(())
}

/// A directive's dark twin's web files, or why it has none; `None` when it asks for none.
fn twin<'a>(
    plan: &Plan,
    at: super::jobs::At,
    images: &'a [Image],
) -> Option<Result<&'a Manifest, String>> {
    let job = match plan.twin(at)? {
        Ok(job) => *job,
        Err(message) => return Some(Err(message.clone())),
    };
    Some(match &images[job] {
        Image::Ready(ready) => ready
            .manifest
            .as_ref()
            .ok_or_else(|| "its web files were not made".to_owned()),
        Image::Failed(message) => Err(message.clone()),
        Image::ToMake => Err("it was not generated".to_owned()),
    })
}

/// Gives a ready figure its dark twin (and, to the chapter's first, the dark themes' CSS); a
/// twin that failed is returned as a failure beside the figure, which keeps its light image
/// (the failure follows `on-error`).
fn add_twin<'a>(
    shown: &mut Shown<'a>,
    twin: Option<Result<&'a Manifest, String>>,
    style: &'a str,
    styled: &mut bool,
    used: &mut Vec<&'a Manifest>,
) -> Option<String> {
    match twin? {
        Ok(manifest) => {
            used.push(manifest);
            shown.dark = Some(manifest);
            shown.style = (!std::mem::replace(styled, true)).then_some(style);
            None
        }
        Err(message) => Some(format!("its dark twin was not made: {message}")),
    }
}

/// What a ready figure shows: its image, its web files, its description if any.
struct Shown<'a> {
    entry: &'a Entry,
    manifest: &'a Manifest,
    /// The dark twin's web files.
    dark: Option<&'a Manifest>,
    /// The dark themes' CSS, on the chapter's first figure with a twin.
    style: Option<&'a str>,
    description: Option<&'a description::Record>,
    /// The id of the description's element: unique in the whole book, so that `print.html`,
    /// which holds every chapter, has no two alike.
    description_id: String,
}

/// Where a ready figure's alt comes from, when its author wrote none.
fn authorless(
    page: &Page<'_>,
    directive: &Directive,
    description: Option<&description::Record>,
) -> Option<(Located, AltFrom)> {
    directive.attrs.alt.is_none().then(|| {
        let at = Located {
            file: page.file.clone(),
            line: directive.line,
            message: String::new(),
        };
        let from = match description {
            Some(_) => AltFrom::Described,
            None => AltFrom::Prompt,
        };
        (at, from)
    })
}

/// What a directive's figure shows, or why it has none.
fn shown<'a>(
    use_: &'a Result<usize, String>,
    images: &'a [Image],
    description: Option<&'a description::Record>,
) -> Result<Shown<'a>, &'a str> {
    let job = use_.as_ref().map_err(String::as_str)?;
    match &images[*job] {
        Image::Ready(ready) => match &ready.manifest {
            Some(manifest) => Ok(Shown {
                entry: &ready.entry,
                manifest,
                dark: None,
                style: None,
                description,
                description_id: String::new(),
            }),
            None => Err("the image's web files were not made"),
        },
        Image::Failed(message) => Err(message.as_str()),
        Image::ToMake => Err("the image was not generated"),
    }
}

/// The id of a directive's description element, from its chapter file and line.
fn description_id(file: &str, line: usize) -> String {
    let hash = blake3::hash(format!("{file}:{line}").as_bytes());
    format!("imagegen-description-{}", &hash.to_hex()[..12])
}

/// The figure of a directive whose image is ready. Its alt text is the author's, else the
/// describer's, else derived from the prompt; a description goes with the describer's alt only.
fn figure_of(book: &Book<'_>, directive: &Directive, page_path: &str, shown: &Shown<'_>) -> String {
    let (entry, manifest) = (shown.entry, shown.manifest);
    let html = book.ctx.renderer == "html";
    // HTML pages find the files beside them (see `mirror`); other renderers climb to the root
    // copy.
    let public = book.public_url();
    let url = |name: &str| {
        if let Some(public) = public {
            format!("{public}/{}", crate::storage::paths::asset(name))
        } else if html {
            rewrite::asset_url("", &book.config.assets_dir, name)
        } else {
            rewrite::asset_url(page_path, &book.config.assets_dir, name)
        }
    };
    let attrs = &directive.attrs;
    let derived;
    let (alt, description) = match alt_of(directive, shown) {
        Some(found) => found,
        None => {
            derived = figure::derive_alt(&directive.prompt);
            (derived.as_str(), None)
        }
    };
    let sizes = match attrs.width {
        Some(width) => figure::sizes_for_width(width),
        None => book.config.output.sizes.clone(),
    };
    let (figure::Picture { sources, fallbacks }, (width, height)) =
        files(manifest, &url, html, entry);
    // The twin is shown at the light image's size, so that nothing moves when the theme
    // changes; other renderers show the light image only.
    let dark = (shown.dark.filter(|_| html)).map(|manifest| files(manifest, &url, html, entry).0);
    let figure = Figure {
        sources,
        fallbacks,
        sizes: &sizes,
        alt,
        caption: attrs.caption.as_deref(),
        width,
        height,
        display_width: attrs.width,
        class: attrs.class.as_deref(),
        id: attrs.id.as_deref(),
        description,
        dark,
        style: shown.style,
    };
    if html {
        figure::html(&figure)
    } else {
        figure::markdown(&figure)
    }
}

/// An image's files as a figure shows them: its modern formats, its fallbacks (the widest only
/// for renderers other than HTML), and its size; a vector master as its SVG, at its view box's
/// size, never inlined, never offered in raster formats a browser does not need.
fn files(
    manifest: &Manifest,
    url: &dyn Fn(&str) -> String,
    html: bool,
    entry: &Entry,
) -> (figure::Picture, (u32, u32)) {
    if let Some(vector) = manifest.vector().filter(|_| html) {
        let fallbacks = vec![(url(&vector.name), vector.width)];
        let picture = figure::Picture {
            sources: Vec::new(),
            fallbacks,
        };
        return (picture, (vector.width, vector.height));
    }
    let sources = manifest
        .sources()
        .into_iter()
        .map(|(media_type, files)| figure::Source {
            media_type,
            candidates: files.iter().map(|f| (url(&f.name), f.width)).collect(),
        })
        .collect();
    let mut fallbacks: Vec<(String, u32)> = manifest
        .fallbacks()
        .iter()
        .map(|f| (url(&f.name), f.width))
        .collect();
    if !html {
        fallbacks.drain(..fallbacks.len().saturating_sub(1));
    }
    let size = manifest
        .main_fallback()
        .map_or((entry.width, entry.height), |f| (f.width, f.height));
    (figure::Picture { sources, fallbacks }, size)
}

/// A figure's alt text and description, when not derived from the prompt: the author's alt,
/// else the describer's; with the describer's long description when it wrote one (an author
/// who took over the alt with `alt --write` keeps it; a decorative image never has one).
fn alt_of<'a>(
    directive: &'a Directive,
    shown: &'a Shown<'_>,
) -> Option<(&'a str, Option<(&'a str, &'a str)>)> {
    let description = shown
        .description
        .map(|record| (shown.description_id.as_str(), record.description.as_str()))
        .filter(|(_, text)| !text.is_empty());
    match (&directive.attrs.alt, shown.description) {
        (Some(alt), _) => Some((alt, description.filter(|_| !alt.is_empty()))),
        (None, Some(record)) => Some((&record.alt, description)),
        (None, None) => None,
    }
}

fn error_figure(book: &Book<'_>, file: &str, line: usize, message: &str) -> String {
    let location = format!("{file}:{line}");
    if book.ctx.renderer == "html" {
        figure::error_html(&location, message)
    } else {
        figure::error_markdown(&location, message)
    }
}
