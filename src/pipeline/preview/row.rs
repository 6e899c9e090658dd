//! The row `plan` prints for each directive (`plan --json` serializes it as it is), made from
//! what [`Planned`] holds.

use super::PlannedImage;
use super::planned::{Describe, Planned, PlannedJob, PlannedJudge};
use crate::cache::key::CacheKey;
use crate::pipeline::prompt_start;

impl From<&Planned> for PlannedImage {
    fn from(p: &Planned) -> PlannedImage {
        let job = p.job.as_ref();
        let text = |f: fn(&PlannedJob) -> String| job.map_or_else(String::new, f);
        let variants = job.and_then(|j| j.variants.as_ref());
        PlannedImage {
            file: p.file.clone(),
            line: p.line,
            status: p.status,
            profile: text(|j| j.profile.clone()),
            provider: text(|j| j.kind.as_str().to_owned()),
            model: text(|j| j.model.clone()),
            size: text(|j| j.size.clone()),
            cost: job.and_then(|j| j.cost),
            batch_cost: job.and_then(|j| j.batch_cost),
            prompt: prompt_start(&p.prompt),
            alt: p.alt.clone(),
            caption: p.caption.clone(),
            key: p.key().map(CacheKey::to_hex),
            message: p.message.clone(),
            describe: p.describe.map(|d| match d {
                Describe::Kept => "cached",
                Describe::Ask { .. } => "describe",
            }),
            describe_cost: match p.describe {
                Some(Describe::Ask { cost }) => cost,
                _ => None,
            },
            references: p.references.clone(),
            candidates: variants.map_or_else(Vec::new, |v| {
                v.candidates.iter().map(|k| k.to_hex()).collect()
            }),
            picked: variants.map(|v| v.picked),
            edit: p.edit.clone(),
            edits: job.and_then(|j| j.edits).map(CacheKey::to_hex),
            claimed_by: p.claimed_by.clone(),
            verdict: p.judge.map(|j| match j {
                PlannedJudge::Kept { mark, .. } => mark.as_str(),
                PlannedJudge::Ask { .. } => "judge",
            }),
            score: match p.judge {
                Some(PlannedJudge::Kept { score, .. }) => Some(score),
                _ => None,
            },
            judge_cost: match p.judge {
                Some(PlannedJudge::Ask { cost }) => cost,
                _ => None,
            },
            dark: job.and_then(|j| j.dark.as_ref()).map(|d| d.status),
            dark_key: (job.and_then(|j| j.dark.as_ref()))
                .and_then(|d| d.key)
                .map(CacheKey::to_hex),
            dark_message: job
                .and_then(|j| j.dark.as_ref())
                .and_then(|d| d.message.clone()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cache::Tier;
    use crate::pipeline::Variants;
    use crate::pipeline::preview::planned::Describe;
    use crate::pipeline::resolve::Status;
    use crate::vocab::ProviderKind;

    fn key(byte: u8) -> CacheKey {
        CacheKey([byte; 32])
    }

    fn json(p: &Planned) -> String {
        serde_json::to_string(&PlannedImage::from(p)).unwrap()
    }

    fn job() -> PlannedJob {
        PlannedJob {
            profile: "default".into(),
            kind: ProviderKind::OpenAi,
            model: "gpt-image-1".into(),
            size: "1536x1024".into(),
            tier: Tier::Committed,
            chain: vec![key(1), key(2)],
            own_waits: false,
            also: vec![key(3)],
            variants: None,
            edits: None,
            served: None,
            provisional: false,
            cost: Some(0.25),
            batch_cost: None,
            dark: None,
        }
    }

    #[test]
    fn a_malformed_block_prints_only_its_place_status_and_message() {
        let p = Planned::new("src/a.md", 3, "", "no closing fence".into());
        assert_eq!(
            json(&p),
            r#"{"file":"src/a.md","line":3,"status":"error","profile":"","provider":"","model":"","size":"","cost":null,"prompt":"","alt":null,"caption":null,"key":null,"message":"no closing fence"}"#
        );
    }

    #[test]
    fn a_planned_job_prints_its_request_keys_variants_edit_and_description() {
        let mut p = Planned::new("src/b.md", 7, "A lighthouse at dusk", String::new());
        p.status = Status::Generate;
        p.message = None;
        p.alt = Some("a lighthouse".into());
        p.references = vec!["#keeper".into()];
        p.edit = Some("make it night".into());
        p.describe = Some(Describe::Ask { cost: Some(0.01) });
        let mut made = job();
        made.variants = Some(Variants {
            candidates: vec![key(1), key(4)],
            picked: 2,
            wait: false,
        });
        made.edits = Some(key(5));
        p.job = Some(made);
        let hex = |b: u8| key(b).to_hex();
        assert_eq!(
            json(&p),
            format!(
                r##"{{"file":"src/b.md","line":7,"status":"generate","profile":"default","provider":"openai","model":"gpt-image-1","size":"1536x1024","cost":0.25,"prompt":"A lighthouse at dusk","alt":"a lighthouse","caption":null,"key":"{}","message":null,"describe":"describe","describe_cost":0.01,"references":["#keeper"],"candidates":["{}","{}"],"picked":2,"edit":"make it night","edits":"{}"}}"##,
                hex(1),
                hex(1),
                hex(4),
                hex(5)
            )
        );
    }

    #[test]
    fn a_key_that_waits_is_not_printed_and_a_kept_description_has_no_price() {
        let mut p = Planned::new("src/c.md", 1, "x", String::new());
        p.status = Status::Cached;
        p.describe = Some(Describe::Kept);
        p.job = Some(PlannedJob {
            own_waits: true,
            ..job()
        });
        let row = PlannedImage::from(&p);
        assert_eq!(row.key, None);
        assert_eq!(row.describe, Some("cached"));
        assert_eq!(row.describe_cost, None);
        assert!(json(&p).contains(r#""key":null"#));
    }
}
