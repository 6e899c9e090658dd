//! What the wire formats share about a request: the prompt, negative prompt and seed as the
//! provider spec says each model takes them, and the aspect ratio sent to providers that take
//! no size.

use crate::request::Request;
use crate::vocab::Negative;

/// The size a provider that only takes aspect ratios is asked for: the listed ratio closest to
/// the requested one.
pub(crate) fn nearest_ratio(size: crate::config::Size, ratios: &[&'static str]) -> &'static str {
    let wanted = (f64::from(size.width) / f64::from(size.height)).ln();
    ratios
        .iter()
        .copied()
        .min_by(|a, b| {
            let distance = |r: &str| {
                let (w, h) = r.split_once(':').expect("ratios are W:H");
                let ratio = w.parse::<f64>().unwrap_or(1.0) / h.parse::<f64>().unwrap_or(1.0);
                (ratio.ln() - wanted).abs()
            };
            distance(a).total_cmp(&distance(b))
        })
        .expect("the list is not empty")
}

/// The prompt as its model is sent it: with the negative prompt appended where the model reads
/// none of its own ([`Negative::Folded`](crate::vocab::Negative)).
pub(crate) fn prompt_as_sent(request: &Request) -> String {
    match (request.kind.spec().negative)(&request.model) {
        Negative::Folded => request.prompt_with_negative(),
        Negative::Field | Negative::Ignored => request.prompt.clone(),
    }
}

/// The negative prompt, for a model that reads it in a field of its own.
pub(crate) fn negative_field(request: &Request) -> Option<&str> {
    let field = (request.kind.spec().negative)(&request.model) == Negative::Field;
    request.negative.as_deref().filter(|_| field)
}

/// The seed, for a kind that sends it (the others' seed only names the cache entry).
pub(crate) fn seed_sent(request: &Request) -> Option<u64> {
    request.seed.filter(|_| request.kind.spec().seed)
}
