//! Stage 2, plan: every directive becomes jobs (the chain of requests that may serve an image,
//! each with its cache key). Directives that ask for the same image share one job.
//!
//! Most directives are planned at once. One that references another directive's image (`#id`)
//! or edits its own waits until that image is ready, since the cache key covers the image's
//! hash: the build plans it in a later round ([`Plan::advance`]), after the images it needs.
//! The files are read at the edge (`references`); nothing else here does I/O.

use std::collections::{HashMap, HashSet};
use std::path::Path;

use super::parse::Page;
use super::references::Reader;
use crate::cache::key::CacheKey;
use crate::config::Config;
use crate::directive::Directive;
use crate::request::{Chain, RefImage, Wanted};

/// One image to provide: the directive's own request first, then its fallbacks.
#[derive(Debug, Clone)]
pub(crate) struct Job {
    /// The cache key of the directive's own request (`chain[0]`).
    pub(crate) key: CacheKey,
    pub(crate) chain: Chain,
}

/// Where a directive is: its page and its place among the page's directives.
pub(crate) type At = (usize, usize);

/// The jobs of a book, in the order they were planned, and what each directive uses.
pub(crate) struct Plan {
    pub(crate) jobs: Vec<Job>,
    /// Per page, per directive: the index of the job its figure shows, or why it has none.
    pub(crate) uses: Vec<Vec<Result<usize, String>>>,
    /// Per page, per directive: its other jobs (the candidates it does not show, the image its
    /// edit starts from), kept with it.
    pub(crate) also: Vec<Vec<Vec<usize>>>,
    /// Per page, per directive with `variants`: its candidates' jobs in order, and the one
    /// shown (from 0).
    pub(crate) candidates: HashMap<At, (Vec<usize>, u32)>,
    /// Per directive with `edit`, once planned: the job whose image its edit starts from.
    pub(crate) edits: HashMap<At, usize>,
    /// Per directive with a dark twin, once its figure is settled: the twin's job (also kept
    /// among its others), or why it has none.
    pub(crate) twins: HashMap<At, Result<usize, String>>,
    /// Directives waiting for images they need, in book order.
    waiting: Vec<Waiting>,
    index: HashMap<CacheKey, usize>,
}

/// A directive planned in a later round.
struct Waiting {
    at: At,
    refs: Vec<Slot>,
    /// Once its own image is planned: the job it edits.
    edits: Option<usize>,
    /// The `mask` of its edit, read.
    mask: Option<RefImage>,
}

/// One reference of a waiting directive.
enum Slot {
    Image(RefImage),
    /// The image of the directive there, named by this label (`#keeper`).
    Of(At, String),
}

/// The label an edit's image has among its references (in records and `list`).
pub(crate) const EDITED: &str = "(the image it edits)";

/// How a directive's picked candidate is found (the cache's `picks/`).
pub(crate) type Picked<'p> = &'p dyn Fn(CacheKey) -> Option<u32>;

/// Plans every directive of every page (taking the chains the head start made, if any); the
/// directives that need another image wait for [`Plan::advance`].
pub(crate) fn jobs(
    pages: &mut [Page<'_>],
    config: &Config,
    reader: &mut Reader,
    picked: Picked<'_>,
) -> Plan {
    let ids = ids(pages);
    let mut plan = Plan {
        jobs: Vec::new(),
        uses: Vec::new(),
        also: Vec::new(),
        candidates: HashMap::new(),
        edits: HashMap::new(),
        twins: HashMap::new(),
        waiting: Vec::new(),
        index: HashMap::new(),
    };
    for (p, page) in pages.iter_mut().enumerate() {
        let mut ahead = page.chains.take().map(Vec::into_iter);
        let chapter_dir = Path::new(&page.file)
            .parent()
            .unwrap_or(Path::new(""))
            .to_owned();
        let mut uses = Vec::with_capacity(page.directives.len());
        for (d, directive) in page.directives.iter().enumerate() {
            let ahead = ahead.as_mut().and_then(Iterator::next).flatten();
            // A twin its profile cannot make is said before the figure is paid for.
            if let Err(message) = crate::request::dark::check(directive, config) {
                uses.push(Err(message));
                continue;
            }
            let simple = ahead.is_some()
                || (directive.attrs.variants.is_none()
                    && !crate::request::needs_references(directive, config));
            if simple {
                let chain = ahead.unwrap_or_else(|| crate::request::chain(directive, config, &[]));
                uses.push(chain.map(|chain| plan.add(chain)));
                continue;
            }
            uses.push(Err(String::new()));
            let slots = crate::request::wanted(directive, config).and_then(|wanted| {
                wanted
                    .iter()
                    .map(|w| slot(w, &chapter_dir, &ids, reader))
                    .collect::<Result<Vec<Slot>, String>>()
            });
            let mask = directive
                .attrs
                .mask
                .as_ref()
                .map(|path| {
                    reader
                        .file(&chapter_dir, path)
                        .map_err(|e| e.replacen("reference ", "mask ", 1))
                })
                .transpose();
            match slots.and_then(|refs| Ok((refs, mask?))) {
                Ok((refs, mask)) => plan.waiting.push(Waiting {
                    at: (p, d),
                    refs,
                    edits: None,
                    mask,
                }),
                Err(message) => *uses.last_mut().expect("just pushed") = Err(message),
            }
        }
        plan.also.push(vec![Vec::new(); uses.len()]);
        plan.uses.push(uses);
    }
    plan.break_cycles(pages);
    plan.advance(pages, config, picked, &|_| None);
    plan
}

/// Where each `id` is; an id on two directives is kept with both places.
fn ids(pages: &[Page<'_>]) -> HashMap<String, Vec<(At, String, usize)>> {
    let mut ids: HashMap<String, Vec<(At, String, usize)>> = HashMap::new();
    for (p, page) in pages.iter().enumerate() {
        for (d, directive) in page.directives.iter().enumerate() {
            if let Some(id) = &directive.attrs.id {
                ids.entry(id.clone()).or_default().push((
                    (p, d),
                    page.file.clone(),
                    directive.line,
                ));
            }
        }
    }
    ids
}

/// Reads one wanted reference: a file now, another directive's image later.
fn slot(
    wanted: &Wanted,
    chapter_dir: &Path,
    ids: &HashMap<String, Vec<(At, String, usize)>>,
    reader: &mut Reader,
) -> Result<Slot, String> {
    match wanted {
        Wanted::Book(path) => reader.file(Path::new(""), path).map(Slot::Image),
        Wanted::Chapter(path) => reader.file(chapter_dir, path).map(Slot::Image),
        Wanted::Directive(id) => match ids.get(id).map(Vec::as_slice) {
            None | Some([]) => Err(format!(
                "reference `#{id}` names no directive; give the directive to reference `id=\"{id}\"`, or fix the name"
            )),
            Some([(at, _, _)]) => Ok(Slot::Of(*at, format!("#{id}"))),
            Some(places) => Err(format!(
                "reference `#{id}` is ambiguous: {} directives have that id ({}); give each its own",
                places.len(),
                places
                    .iter()
                    .map(|(_, file, line)| format!("{file}:{line}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            )),
        },
    }
}

impl Plan {
    /// Adds a job for a chain, or finds the one with the same key.
    fn add(&mut self, chain: Chain) -> usize {
        let key = chain[0].0;
        let jobs = &mut self.jobs;
        *self.index.entry(key).or_insert_with(|| {
            jobs.push(Job { key, chain });
            jobs.len() - 1
        })
    }

    /// The jobs whose images waiting directives reference or edit (and whose masters must be
    /// read back): those the directives they name by `#id` show, and those edits start from.
    pub(crate) fn referenced(&self) -> HashSet<usize> {
        let mut jobs = HashSet::new();
        for waiting in &self.waiting {
            jobs.extend(waiting.edits);
            for slot in &waiting.refs {
                if let Slot::Of((p, d), _) = slot
                    && let Ok(job) = self.uses[*p][*d]
                {
                    jobs.insert(job);
                }
            }
        }
        jobs
    }

    /// Whether directives still wait for images.
    pub(crate) fn is_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// The directive a waiting directive references, when it waits for nothing else.
    fn waits_on(&self, at: At) -> Vec<At> {
        self.waiting
            .iter()
            .find(|w| w.at == at)
            .map(|w| {
                w.refs
                    .iter()
                    .filter_map(|slot| match slot {
                        Slot::Of(target, _) => Some(*target),
                        Slot::Image(_) => None,
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Fails every directive whose references lead back to itself, naming the circle.
    fn break_cycles(&mut self, pages: &[Page<'_>]) {
        let waiting: HashSet<At> = self.waiting.iter().map(|w| w.at).collect();
        let mut broken: HashMap<At, String> = HashMap::new();
        for start in self.waiting.iter().map(|w| w.at) {
            // Depth-first along the references, remembering the path.
            let mut path = vec![start];
            let mut stack = vec![self.waits_on(start)];
            let mut seen = HashSet::from([start]);
            while let Some(next) = stack.last_mut() {
                let Some(target) = next.pop() else {
                    stack.pop();
                    path.pop();
                    continue;
                };
                if target == start {
                    let name = |at: &At| {
                        let (p, d) = *at;
                        let directive = &pages[p].directives[d];
                        let id = directive.attrs.id.as_deref().unwrap_or("?");
                        format!("#{id} ({}:{})", pages[p].file, directive.line)
                    };
                    let mut circle: Vec<String> = path.iter().map(name).collect();
                    circle.push(name(&start));
                    broken.insert(
                        start,
                        format!(
                            "its references go round in a circle: {}; remove one of them",
                            circle.join(" → ")
                        ),
                    );
                    break;
                }
                if waiting.contains(&target) && seen.insert(target) {
                    path.push(target);
                    stack.push(self.waits_on(target));
                }
            }
        }
        for (at, message) in broken {
            self.fail(at, message);
        }
    }

    fn fail(&mut self, at: At, message: String) {
        self.waiting.retain(|w| w.at != at);
        self.uses[at.0][at.1] = Err(message);
    }

    /// Plans what waiting directives can now be planned, given each job's image: `ready(job)` is
    /// the master as a reference, an error when the job has none, or `None` when it is not
    /// provided yet. Moves every directive as far as it can (one that fails lets those waiting
    /// on it fail with its reason at once). Returns whether anything moved; a build calls it
    /// after each round of images, until nothing does.
    pub(crate) fn advance(
        &mut self,
        pages: &[Page<'_>],
        config: &Config,
        picked: Picked<'_>,
        ready: &dyn Fn(usize) -> Option<Result<RefImage, String>>,
    ) -> bool {
        let mut moved = false;
        loop {
            let state = self.state();
            let waiting_at: HashSet<At> = self.waiting.iter().map(|w| w.at).collect();
            let mut still = Vec::new();
            let mut failed = Vec::new();
            for mut waiting in std::mem::take(&mut self.waiting) {
                let (p, d) = waiting.at;
                let directive = &pages[p].directives[d];
                match self.step(&mut waiting, directive, config, picked, ready, &waiting_at) {
                    Ok(true) => {}
                    Ok(false) => still.push(waiting),
                    Err(message) => failed.push((waiting.at, message)),
                }
            }
            self.waiting = still;
            for (at, message) in failed {
                self.fail(at, message);
            }
            if self.state() == state {
                return moved;
            }
            moved = true;
        }
    }

    /// What `advance` changes: the jobs, who waits, and which waiting directives edit.
    fn state(&self) -> (usize, Vec<(At, Option<usize>)>) {
        (
            self.jobs.len(),
            self.waiting.iter().map(|w| (w.at, w.edits)).collect(),
        )
    }

    /// Fails what still waits once every job has its image and nothing moved (it cannot
    /// happen: cycles are broken before; kept so that no directive is ever dropped).
    pub(crate) fn give_up(&mut self) {
        for at in self.waiting.iter().map(|w| w.at).collect::<Vec<_>>() {
            self.fail(at, "the images it references were never made".into());
        }
    }

    /// Moves one waiting directive as far as it can: `Ok(true)` when it is planned.
    fn step(
        &mut self,
        waiting: &mut Waiting,
        directive: &Directive,
        config: &Config,
        picked: Picked<'_>,
        ready: &dyn Fn(usize) -> Option<Result<RefImage, String>>,
        waiting_at: &HashSet<At>,
    ) -> Result<bool, String> {
        let (p, d) = waiting.at;
        if let Some(base) = waiting.edits {
            let mut image = match ready(base) {
                None => return Ok(false),
                Some(image) => image.map_err(|e| format!("the image to edit has none: {e}"))?,
            };
            EDITED.clone_into(&mut image.label);
            let chain =
                crate::request::edit_chain(directive, config, image, waiting.mask.as_ref())?;
            let job = self.add(chain);
            self.also[p][d].push(base);
            self.edits.insert((p, d), base);
            self.uses[p][d] = Ok(job);
            return Ok(true);
        }
        let mut refs = Vec::with_capacity(waiting.refs.len());
        for slot in &waiting.refs {
            match slot {
                Slot::Image(image) => refs.push(image.clone()),
                Slot::Of(target, label) => {
                    if waiting_at.contains(target) {
                        return Ok(false);
                    }
                    let job = self.uses[target.0][target.1]
                        .clone()
                        .map_err(|e| format!("reference `{label}` has no image: {e}"))?;
                    match ready(job) {
                        None => return Ok(false),
                        Some(Err(e)) => {
                            return Err(format!("reference `{label}` has no image: {e}"));
                        }
                        Some(Ok(mut image)) => {
                            image.label.clone_from(label);
                            refs.push(image);
                        }
                    }
                }
            }
        }
        if directive.attrs.edit.is_some() {
            // Whether its provider can take the image back is known now: say so before its
            // first image is paid for.
            let image = super::references::stand_in(CacheKey([0; 32]));
            crate::request::edit_chain(directive, config, image, waiting.mask.as_ref())?;
        }
        let shown = self.candidates_of(waiting.at, directive, config, &refs, picked)?;
        if directive.attrs.edit.is_some() {
            waiting.refs = refs.into_iter().map(Slot::Image).collect();
            waiting.edits = Some(shown);
            return Ok(false);
        }
        self.uses[p][d] = Ok(shown);
        Ok(true)
    }

    /// Plans a directive's own image (each candidate of its `variants`); returns the job shown.
    fn candidates_of(
        &mut self,
        at: At,
        directive: &Directive,
        config: &Config,
        refs: &[RefImage],
        picked: Picked<'_>,
    ) -> Result<usize, String> {
        let count = directive.attrs.variants.unwrap_or(1);
        let mut jobs = Vec::with_capacity(count as usize);
        for candidate in 0..count {
            let chain = crate::request::candidate_chain(directive, config, refs, candidate)?;
            jobs.push(self.add(chain));
        }
        if directive.attrs.variants.is_none() {
            return Ok(jobs[0]);
        }
        let chosen = picked(self.jobs[jobs[0]].key)
            .filter(|c| *c < count)
            .unwrap_or(0);
        let shown = jobs[chosen as usize];
        self.also[at.0][at.1].extend(jobs.iter().copied().filter(|j| *j != shown));
        self.candidates.insert(at, (jobs, chosen));
        Ok(shown)
    }

    /// Shows `job` (one of the directive's own jobs, or a new one) in the directive's figure,
    /// keeping the job it showed before with its others.
    pub(crate) fn show(&mut self, at: At, job: usize) {
        let Ok(current) = self.uses[at.0][at.1] else {
            return;
        };
        if current == job {
            return;
        }
        let also = &mut self.also[at.0][at.1];
        also.retain(|j| *j != job);
        also.push(current);
        self.uses[at.0][at.1] = Ok(job);
        if let Some((jobs, chosen)) = self.candidates.get_mut(&at)
            && let Some(index) = jobs.iter().position(|j| *j == job)
        {
            *chosen = u32::try_from(index).unwrap_or(0);
        }
    }

    /// Plans a chain the directive keeps besides its figure's (a new attempt of `gate`);
    /// returns its job.
    pub(crate) fn add_kept(&mut self, at: At, chain: Chain) -> usize {
        let job = self.add(chain);
        let also = &mut self.also[at.0][at.1];
        if !also.contains(&job) && self.uses[at.0][at.1] != Ok(job) {
            also.push(job);
        }
        job
    }

    /// Plans a directive's dark twin (kept with its other jobs); returns its job.
    pub(crate) fn add_twin(&mut self, at: At, chain: Chain) -> usize {
        let job = self.add_kept(at, chain);
        self.twins.insert(at, Ok(job));
        job
    }

    /// The dark twin a directive shows, once planned: its job, or why it has none.
    pub(crate) fn twin(&self, at: At) -> Option<&Result<usize, String>> {
        self.twins.get(&at)
    }

    /// Every job a directive needs: the one shown first, then its others.
    pub(crate) fn jobs_of(&self, at: At) -> Vec<usize> {
        let mut jobs: Vec<usize> = self.uses[at.0][at.1].iter().copied().collect();
        jobs.extend(&self.also[at.0][at.1]);
        jobs
    }
}
