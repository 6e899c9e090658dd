//! Budgets: how many of the images a build is about to generate it may generate, under
//! `max-images-per-build` and `max-cost-per-build` (by the price estimates). Pure: requests in,
//! verdicts out.

use crate::config::Config;
use crate::price;
use crate::request::Request;

/// For each image's first request, in the order given (the book's), `None` when it may be
/// generated, or why it may not. Generation stops at the first one over a cap: every later one
/// is over too, so a
/// build spends in book order and the next build carries on where this one stopped.
/// Placeholders cost nothing and are never counted; a model with no known price counts as free.
pub(crate) fn apply(requests: &[&Request], config: &Config) -> Vec<Option<String>> {
    let mut images = 0usize;
    let mut spent = 0.0f64;
    let mut stopped: Option<String> = None;
    let mut verdicts = Vec::with_capacity(requests.len());
    for request in requests {
        if !request.kind.is_model() {
            verdicts.push(None);
            continue;
        }
        if stopped.is_none() {
            let cost = config
                .profile(&request.profile)
                .ok()
                .and_then(|profile| price::estimate(request, profile, &config.prices))
                .unwrap_or(0.0);
            if let Some(cap) = config.max_images_per_build
                && images + 1 > cap
            {
                stopped = Some(format!(
                    "not generated: this build reached `max-images-per-build = {cap}`; raise it in book.toml, or build again to make the next ones"
                ));
            } else if let Some(cap) = config.max_cost_per_build
                && spent + cost > cap + 1e-9
            {
                stopped = Some(format!(
                    "not generated: it would take this build's estimated spend from ${spent:.2} to ${:.2}, over `max-cost-per-build = {cap}`; raise it in book.toml, or build again to make the next ones",
                    spent + cost
                ));
            } else {
                images += 1;
                spent += cost;
            }
        }
        verdicts.push(stopped.clone());
    }
    verdicts
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::directive::{Attrs, Directive};
    use crate::request::{self, Chain};
    use crate::test_support::books::merged;

    /// A book with a paid profile (`paid`, $0.04 an image by its `price`) and the placeholder.
    fn config(budget: serde_json::Value) -> Config {
        let table = json!({
            "provider": "paid",
            "providers": { "paid": { "kind": "openai", "model": "gpt-image-1", "price": 0.04 } },
        });
        merged(table, budget)
    }

    fn chains(config: &Config, prompts: &[(&str, &str)]) -> Vec<Chain> {
        prompts
            .iter()
            .map(|(prompt, provider)| {
                let directive = Directive {
                    span: 0..0,
                    line: 1,
                    top_level: true,
                    prompt: (*prompt).to_owned(),
                    attrs: Attrs {
                        provider: Some((*provider).to_owned()),
                        ..Attrs::default()
                    },
                };
                request::chain(&directive, config, &[]).unwrap()
            })
            .collect()
    }

    fn verdicts(config: &Config, prompts: &[(&str, &str)]) -> Vec<bool> {
        let chains = chains(config, prompts);
        let requests: Vec<&Request> = chains.iter().map(|chain| &chain[0].1).collect();
        apply(&requests, config)
            .iter()
            .map(Option::is_none)
            .collect()
    }

    #[test]
    fn no_budget_generates_everything() {
        let config = config(json!({}));
        assert_eq!(
            verdicts(&config, &[("a", "paid"), ("b", "paid"), ("c", "paid")]),
            [true, true, true]
        );
    }

    #[test]
    fn the_image_cap_stops_generation_in_book_order_and_skips_placeholders() {
        let config = config(json!({ "max-images-per-build": 2 }));
        let got = verdicts(
            &config,
            &[
                ("a", "paid"),
                ("draft", "placeholder"),
                ("b", "paid"),
                ("c", "paid"),
                ("later draft", "placeholder"),
                ("d", "paid"),
            ],
        );
        assert_eq!(got, [true, true, true, false, true, false]);
    }

    #[test]
    fn the_cost_cap_counts_estimated_prices() {
        // $0.04 each: two fit under $0.10, the third would make $0.12.
        let config = config(json!({ "max-cost-per-build": 0.1 }));
        let chains = chains(&config, &[("a", "paid"), ("b", "paid"), ("c", "paid")]);
        let requests: Vec<&Request> = chains.iter().map(|chain| &chain[0].1).collect();
        let got = apply(&requests, &config);
        assert!(got[0].is_none() && got[1].is_none());
        let message = got[2].as_deref().unwrap();
        assert!(message.contains("$0.08 to $0.12"), "{message}");
        assert!(message.contains("max-cost-per-build = 0.1"), "{message}");
    }

    #[test]
    fn a_zero_cap_generates_nothing_paid() {
        let config = config(json!({ "max-images-per-build": 0 }));
        assert_eq!(
            verdicts(&config, &[("a", "paid"), ("draft", "placeholder")]),
            [false, true]
        );
    }

    #[test]
    fn a_negative_cost_cap_is_refused() {
        let table = json!({ "max-cost-per-build": -1.0 });
        let error = Config::from_table(Some(&table)).unwrap_err().to_string();
        assert!(error.contains("max-cost-per-build"), "{error}");
    }
}
