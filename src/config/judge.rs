//! `[preprocessor.imagegen.judge]`: a vision model checks each generated image against its
//! prompt (see [`crate::judgement`]); `mode` says what a low score does.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::alt::{RawDescribe, vision_setup};
use super::{DescribeWith, Invalid, Profile};

/// The most new attempts `gate` may ask for a figure.
pub(crate) const MAX_RETRIES: u32 = 5;

/// What a judgement does.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum JudgeMode {
    /// Scores are kept and shown (`list`, `stats`, `plan`, the review page); variants show the
    /// best-scored candidate.
    Report,
    /// As `Report`, and a figure below `min-score` gets up to `retries` new attempts.
    Gate,
}

/// `[judge]`, checked.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Judge {
    pub(crate) mode: JudgeMode,
    /// The profile and model that judge, with their `extra` and `price`.
    pub(crate) with: DescribeWith,
    /// Below it, a figure's verdict is "review".
    pub(crate) min_score: f64,
    /// `gate` only: the most new attempts for a figure below `min-score`.
    pub(crate) retries: u32,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub(super) struct RawJudge {
    mode: Option<String>,
    profile: Option<String>,
    model: Option<String>,
    #[serde(default)]
    pub(super) extra: serde_json::Map<String, serde_json::Value>,
    price: Option<f64>,
    min_score: Option<f64>,
    retries: Option<u32>,
}

/// `[judge]`: `None` when absent or `mode = "off"` (still checked, so that turning it on does
/// not reveal a mistake).
pub(super) fn judge(
    raw: Option<RawJudge>,
    profiles: &BTreeMap<String, Profile>,
) -> Result<Option<Judge>, Invalid> {
    let Some(raw) = raw else {
        return Ok(None);
    };
    let mode = match raw.mode.as_deref() {
        None | Some("off") => None,
        Some("report") => Some(JudgeMode::Report),
        Some("gate") => Some(JudgeMode::Gate),
        Some(other) => {
            return Err((
                "judge.mode".into(),
                format!(
                    "unknown value `{other}`; use \"off\" (no judge), \"report\" (score each image and show the scores) or \"gate\" (also try again below `min-score`)"
                ),
            ));
        }
    };
    let min_score = raw.min_score.unwrap_or(0.8);
    if !(0.0..=1.0).contains(&min_score) {
        return Err((
            "judge.min-score".into(),
            format!("{min_score} is not a score; use a number from 0 to 1, such as 0.8"),
        ));
    }
    let retries = raw.retries.unwrap_or(1);
    if retries > MAX_RETRIES {
        return Err((
            "judge.retries".into(),
            format!("{retries} new attempts per figure; at most {MAX_RETRIES} (each is paid for)"),
        ));
    }
    let Some(profile) = raw.profile else {
        if mode.is_none() {
            return Ok(None);
        }
        return Err((
            "judge.profile".into(),
            "a judge needs a profile: set `profile = \"NAME\"`, naming a provider profile that can read images".into(),
        ));
    };
    let with = vision_setup(
        "judge",
        RawDescribe {
            profile,
            model: raw.model,
            extra: raw.extra,
            price: raw.price,
        },
        profiles,
    )?;
    Ok(mode.map(|mode| Judge {
        mode,
        with,
        min_score,
        retries,
    }))
}

impl super::Config {
    /// The id of the judge whose judgements figures use.
    pub(crate) fn judge_id(&self) -> Option<String> {
        let judge = self.judge.as_ref()?;
        let kind = self.profiles[&judge.with.profile].kind;
        Some(crate::judgement::judge_id(kind, &judge.with.model))
    }
}
