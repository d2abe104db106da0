//! A stream's `release:` block: how payloads are cut from the stream, verified and accepted. Read by
//! the release controller. Raw types as written, the validated model, and the checks between them.

use std::collections::BTreeMap;
use std::time::Duration;

use indexmap::IndexMap;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_saphyr::Spanned;

use super::model::Checker;

/// Payload cutting and verification for one stream.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Release")]
pub struct RawRelease {
    /// The payload name prefix, e.g. `4.17.0-0.okd-scos`: payloads are named
    /// `<name>-<UTC YYYY-MM-DD-HHMMSS>`, which must be a valid semantic version.
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// No new payload while this many are Pending or Ready (0: no limit). Default 0.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_unready: Option<u32>,
    /// The least time between two payloads, e.g. `1h`. Default: none.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub min_interval: Option<Spanned<String>>,
    /// Accepted payloads beyond the newest 5 are removed once older than this, e.g. `72h`.
    /// Default: kept.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expires: Option<Spanned<String>>,
    /// Verification jobs that gate acceptance, by name.
    #[serde(default)]
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub verify: IndexMap<String, RawVerify>,
    /// The built-in blocking checks: `consistency` (default on) and `base_image_policy` (the
    /// default policy unless given; `false` turns it off). See docs/guide/checks.md.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<RawChecks>,
    /// What happens when a payload is Accepted, by name: a floating tag moved to it (`tag_ref`),
    /// or its images copied into another stream (`stream`, with `tags` / `exclude_tags`), as the
    /// release controller's `publish` (`tagRef`, `imageStreamRef`).
    #[serde(default)]
    #[serde(skip_serializing_if = "IndexMap::is_empty")]
    pub publish: IndexMap<String, RawPublish>,
    /// Promotion of Accepted payloads to stable releases on a schedule.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub promote: Option<RawPromote>,
}

/// The `promote:` block: when and how the newest qualifying Accepted payload becomes a stable
/// release.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Promote")]
pub struct RawPromote {
    /// Promote this long after the last promotion, e.g. `14d`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub every: Option<Spanned<String>>,
    /// Or: promote at the times of this cron expression (UTC), e.g. `0 0 * * 1`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cron: Option<Spanned<String>>,
    /// The stable name, `{n}` counting the stream's stable releases from 0. Default: from the
    /// payload prefix, `X.Y.Z-0.SUFFIX` → `X.Y.Z-SUFFIX.{n}`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<Spanned<String>>,
    /// The channels the stable releases join. Default: `stable-X` and `stable-X.Y`.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub channels: Option<Vec<String>>,
    /// The `verify:` jobs that must have passed on a payload for it to be promoted. Default: every
    /// upgrade job.
    #[serde(default)]
    #[schemars(with = "Option<Vec<String>>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub require: Option<Vec<Spanned<String>>>,
}

/// One `publish:` action, on the newest Accepted payload of the stream.
#[derive(Debug, Default, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "PublishAction")]
pub struct RawPublish {
    /// Keep this tag of the store pointing at the newest Accepted payload (e.g. `scos-4.17`).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub tag_ref: Option<Spanned<String>>,
    /// Copy the Accepted payload's images into this stream (stream inheritance: how OKD took
    /// most OCP images); the target stream then cuts its own payloads.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stream: Option<Spanned<String>>,
    /// With `stream`: copy only these tags (default: all).
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// With `stream`: never copy these tags (e.g. the OS and installer images a variant builds).
    #[serde(default)]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub exclude_tags: Vec<String>,
    /// Not carried out.
    #[serde(default)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
}

/// The built-in checks of a stream.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Checks")]
pub struct RawChecks {
    /// Every referenced image exists and parses, and image-references is complete. Default true.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consistency: Option<bool>,
    /// Which OS bases component images may have: `{ allow: [RULE…], deny: [RULE…] }` (a list left
    /// out keeps the default), or `false` for no policy check. Default: Fedora, CentOS Stream and
    /// UBI allowed, OCP (`ose-*`) images denied.
    #[serde(default)]
    #[schemars(with = "Option<serde_json::Value>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_image_policy: Option<PolicySetting>,
}

/// `base_image_policy:` as written: `false`/`true`, or a policy.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum PolicySetting {
    /// `false`: off; `true`: the default policy.
    Enabled(bool),
    /// A policy.
    Policy(super::policy::Policy),
}

impl<'de> Deserialize<'de> for PolicySetting {
    // By hand rather than `untagged`, so that a mistake inside a policy is reported as itself
    // (with its line), not as "matches no variant".
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Visit;
        impl<'de> serde::de::Visitor<'de> for Visit {
            type Value = PolicySetting;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("true, false, or a policy { allow: [...], deny: [...] }")
            }
            fn visit_bool<E: serde::de::Error>(self, v: bool) -> Result<PolicySetting, E> {
                Ok(PolicySetting::Enabled(v))
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(
                self,
                map: A,
            ) -> Result<PolicySetting, A::Error> {
                super::policy::Policy::deserialize(serde::de::value::MapAccessDeserializer::new(
                    map,
                ))
                .map(PolicySetting::Policy)
            }
        }
        d.deserialize_any(Visit)
    }
}

/// One verification job.
#[derive(Debug, Deserialize, Serialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Verify")]
pub struct RawVerify {
    /// Program and arguments (no shell), run with ci-operator's environment
    /// (`RELEASE_IMAGE_LATEST`, `RELEASE_IMAGE_INITIAL`, `ARTIFACT_DIR`, `SHARED_DIR`, `JOB_NAME`,
    /// `BUILD_ID`).
    #[schemars(with = "Vec<String>")]
    pub command: Spanned<Vec<String>>,
    /// Run the command in this container image (with podman) instead of on the host.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    /// Extra environment variables.
    #[serde(default)]
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Informing only: runs, but never rejects the payload.
    #[serde(default)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub optional: bool,
    /// Not run at all.
    #[serde(default)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub disabled: bool,
    /// An upgrade test: `RELEASE_IMAGE_INITIAL` is the release it upgrades from (see
    /// `upgrade_from`, default `previous`).
    #[serde(default)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub upgrade: bool,
    /// Where an upgrade test starts: `previous` (the newest Accepted payload of this stream),
    /// `previous_minor`, `all_previous_stable`, or the name of another stream. Implies `upgrade`.
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub upgrade_from: Option<Spanned<String>>,
    /// Relaunch a failed run up to this many times, with exponential backoff. Default 0.
    #[serde(default)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_retries: Option<u32>,
    /// How long one run may take, e.g. `4h` (the default).
    #[serde(default)]
    #[schemars(with = "Option<String>")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout: Option<Spanned<String>>,
    /// Lease pools (keys of the top-level `leases`) the job takes one lease from while it runs.
    #[serde(default)]
    #[schemars(with = "Vec<String>")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub leases: Vec<Spanned<String>>,
}

/// The release settings of a stream, checked.
#[derive(Debug, Clone, Serialize)]
pub struct Release {
    /// The payload name prefix.
    pub name: String,
    /// No new payload while this many are unready (0: no limit).
    pub max_unready: u32,
    /// The least time between two payloads.
    #[serde(with = "seconds")]
    pub min_interval: Duration,
    /// When Accepted payloads beyond the newest 5 expire.
    #[serde(with = "opt_seconds")]
    pub expires: Option<Duration>,
    /// Verification jobs (not disabled), in file order.
    pub verify: IndexMap<String, Verify>,
    /// The built-in checks.
    pub checks: Checks,
    /// What happens on acceptance (not disabled), in file order.
    pub publish: IndexMap<String, PublishAction>,
    /// Promotion to stable releases, if scheduled.
    pub promote: Option<Promote>,
}

/// When promotion is due.
#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// This long after the last promotion.
    #[serde(with = "seconds")]
    Every(Duration),
    /// At the times of a cron expression.
    Cron(Box<super::model::Rebuild>),
}

/// The `promote:` block, checked.
#[derive(Debug, Clone, Serialize)]
pub struct Promote {
    /// When it is due.
    pub schedule: Schedule,
    /// The stable name template, with `{n}`.
    pub name: String,
    /// Channels.
    pub channels: Vec<String>,
    /// Jobs that must have passed.
    pub require: Vec<String>,
}

impl Promote {
    /// When the next promotion is due (unix seconds), given the last one; the first is due at once.
    pub fn next_due(&self, last: Option<i64>) -> i64 {
        let Some(last) = last else { return i64::MIN };
        match &self.schedule {
            Schedule::Every(d) => last.saturating_add(d.as_secs() as i64),
            Schedule::Cron(c) => chrono::DateTime::from_timestamp(last, 0)
                .and_then(|from| c.cron.find_next_occurrence(&from, false).ok())
                .map_or(i64::MAX, |t| t.timestamp()),
        }
    }

    /// The stable name of the stream's `n`th stable release (from 0).
    pub fn stable_name(&self, n: usize) -> String {
        self.name.replace("{n}", &n.to_string())
    }
}

/// The default stable name template after payload prefix `X.Y.Z-0.SUFFIX`: `X.Y.Z-SUFFIX.{n}`
/// (`4.17.0-0.okd-scos` → `4.17.0-okd-scos.{n}`).
pub fn default_stable_template(prefix: &str) -> Option<String> {
    PayloadPrefix::parse(prefix).map(|p| p.stable_template())
}

/// A payload name prefix `X.Y.Z-0.SUFFIX`, taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadPrefix {
    /// X.
    pub major: u64,
    /// Y.
    pub minor: u64,
    /// `X.Y.Z`.
    pub version: String,
    /// SUFFIX, as `okd-scos`.
    pub suffix: String,
}

impl PayloadPrefix {
    /// Parses `X.Y.Z-0.SUFFIX`; `None` for anything else (`4-scos-stable`).
    pub fn parse(name: &str) -> Option<PayloadPrefix> {
        let (version, suffix) = name.split_once("-0.")?;
        let v = semver::Version::parse(version).ok()?;
        let ok = !suffix.is_empty()
            && suffix
                .bytes()
                .all(|c| c.is_ascii_alphanumeric() || c == b'-' || c == b'.');
        ok.then(|| PayloadPrefix {
            major: v.major,
            minor: v.minor,
            version: version.to_string(),
            suffix: suffix.to_string(),
        })
    }

    /// The stable name template: `X.Y.Z-SUFFIX.{n}` (`4.17.0-okd-scos.{n}`).
    pub fn stable_template(&self) -> String {
        format!("{}-{}.{{n}}", self.version, self.suffix)
    }

    /// The stream name: `SUFFIX-X.Y` (`okd-scos-4.20`).
    pub fn stream(&self) -> String {
        format!("{}-{}.{}", self.suffix, self.major, self.minor)
    }
}

/// The built-in checks of a stream, checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Checks {
    /// Run the consistency check.
    pub consistency: bool,
    /// Run the base-image policy check with this policy.
    pub base_image_policy: Option<super::policy::Policy>,
}

impl Default for Checks {
    /// Both checks, the default policy.
    fn default() -> Checks {
        Checks {
            consistency: true,
            base_image_policy: Some(Default::default()),
        }
    }
}

/// A `publish:` action, checked.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PublishAction {
    /// Move this store tag to the newest Accepted payload.
    TagRef(String),
    /// Copy the newest Accepted payload's images into a stream.
    Stream {
        /// The target stream.
        stream: String,
        /// Only these tags (empty: all).
        tags: Vec<String>,
        /// Never these tags.
        exclude_tags: Vec<String>,
    },
}

impl PublishAction {
    /// Whether a stream inheriting with this action takes `tag`.
    pub fn takes(&self, tag: &str) -> bool {
        match self {
            PublishAction::TagRef(_) => false,
            PublishAction::Stream {
                tags, exclude_tags, ..
            } => {
                (tags.is_empty() || tags.iter().any(|t| t == tag))
                    && !exclude_tags.iter().any(|t| t == tag)
            }
        }
    }
}

/// A verification job, checked.
#[derive(Debug, Clone, Serialize)]
pub struct Verify {
    /// Program and arguments.
    pub command: Vec<String>,
    /// Container image, for the podman executor.
    pub image: Option<String>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Informing only.
    pub optional: bool,
    /// For upgrade tests: where they start.
    pub upgrade_from: Option<UpgradeFrom>,
    /// Relaunches after a failure.
    pub max_retries: u32,
    /// How long one run may take.
    #[serde(with = "seconds")]
    pub timeout: Duration,
    /// Lease pools, one lease from each.
    pub leases: Vec<String>,
}

/// Where an upgrade test starts.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum UpgradeFrom {
    /// The newest Accepted payload of the same stream.
    Previous,
    /// The newest Accepted release of the previous minor.
    PreviousMinor,
    /// Every earlier stable release of this minor, and the latest of the previous minor.
    AllPreviousStable,
    /// The newest Accepted payload of another stream.
    Stream(String),
}

impl std::fmt::Display for UpgradeFrom {
    /// As written in `forge.yaml`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            UpgradeFrom::Previous => f.write_str("previous"),
            UpgradeFrom::PreviousMinor => f.write_str("previous_minor"),
            UpgradeFrom::AllPreviousStable => f.write_str("all_previous_stable"),
            UpgradeFrom::Stream(s) => write!(f, "stream {s}"),
        }
    }
}

/// The default job timeout, as ci-operator's.
pub const DEFAULT_TIMEOUT: Duration = Duration::from_secs(4 * 3600);

/// Parses `90s`, `30m`, `1h30m`, `72h`, `14d` (units s, m, h, d; at least one part; no sign).
pub fn parse_duration(text: &str) -> Option<Duration> {
    let mut total: u64 = 0;
    let mut digits = String::new();
    let mut parts = 0;
    for c in text.chars() {
        if c.is_ascii_digit() {
            digits.push(c);
            continue;
        }
        let unit = match c {
            's' => 1,
            'm' => 60,
            'h' => 3600,
            'd' => 86_400,
            _ => return None,
        };
        let n: u64 = digits.parse().ok()?;
        total = total.checked_add(n.checked_mul(unit)?)?;
        digits.clear();
        parts += 1;
    }
    (digits.is_empty() && parts > 0).then_some(Duration::from_secs(total))
}

fn duration(ck: &mut Checker, field: String, value: Option<Spanned<String>>) -> Option<Duration> {
    let v = value?;
    match parse_duration(&v.value) {
        Some(d) => Some(d),
        None => {
            ck.at(
                v.referenced,
                field,
                format!(
                    "'{}' is not a duration; write e.g. 90s, 30m, 1h30m, 72h or 14d",
                    v.value
                ),
            );
            None
        }
    }
}

/// Checks the `release:` block of stream `stream`; `streams` are every stream's name, `pools` the
/// lease pools defined.
pub(super) fn release(
    ck: &mut Checker,
    stream: &str,
    raw: RawRelease,
    streams: &[String],
    pools: &IndexMap<String, usize>,
) -> Release {
    let field = format!("streams.{stream}.release");
    let example = format!("{}-2026-01-01-000000", raw.name.value);
    if raw.name.value.is_empty() || payload::version::ReleaseName::parse(&example).is_err() {
        ck.at(
            raw.name.referenced,
            format!("{field}.name"),
            format!(
                "'{}' cannot prefix payload names: '{example}' must be a semantic version (e.g. 4.17.0-0.okd-scos)",
                raw.name.value
            ),
        );
    }
    let min_interval =
        duration(ck, format!("{field}.min_interval"), raw.min_interval).unwrap_or(Duration::ZERO);
    let expires = duration(ck, format!("{field}.expires"), raw.expires);
    let mut verify = IndexMap::new();
    for (name, v) in raw.verify {
        let at = format!("{field}.verify.{name}");
        if let Some((_, n)) = name.rsplit_once('-') {
            if !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()) {
                ck.at(
                    v.command.referenced,
                    at.clone(),
                    "a job name must not end in -<digits> (that suffix numbers retries)",
                );
            }
        }
        if v.command.value.first().is_none_or(|p| p.is_empty()) {
            ck.at(
                v.command.referenced,
                format!("{at}.command"),
                "the command needs at least a program",
            );
        }
        let timeout = duration(ck, format!("{at}.timeout"), v.timeout).unwrap_or(DEFAULT_TIMEOUT);
        let upgrade_from = match v.upgrade_from {
            None => v.upgrade.then_some(UpgradeFrom::Previous),
            Some(u) => Some(match u.value.as_str() {
                "previous" => UpgradeFrom::Previous,
                "previous_minor" => UpgradeFrom::PreviousMinor,
                "all_previous_stable" => UpgradeFrom::AllPreviousStable,
                s if streams.iter().any(|n| n == s) => UpgradeFrom::Stream(s.to_string()),
                s => {
                    ck.at(
                        u.referenced,
                        format!("{at}.upgrade_from"),
                        format!(
                            "'{s}' is neither previous, previous_minor, all_previous_stable nor a stream (streams: {})",
                            streams.join(", ")
                        ),
                    );
                    UpgradeFrom::Previous
                }
            }),
        };
        let mut leases = Vec::new();
        for l in v.leases {
            if !pools.contains_key(&l.value) {
                let known: Vec<&str> = pools.keys().map(String::as_str).collect();
                ck.at(
                    l.referenced,
                    format!("{at}.leases"),
                    format!(
                        "no lease pool '{}'; define it under the top-level `leases:` (pools: {})",
                        l.value,
                        if known.is_empty() {
                            "none".to_string()
                        } else {
                            known.join(", ")
                        }
                    ),
                );
            }
            leases.push(l.value);
        }
        if v.disabled {
            continue;
        }
        verify.insert(
            name,
            Verify {
                command: v.command.value,
                image: v.image,
                env: v.env,
                optional: v.optional,
                upgrade_from,
                max_retries: v.max_retries.unwrap_or(0),
                timeout,
                leases,
            },
        );
    }
    let mut publish = IndexMap::new();
    for (name, p) in raw.publish {
        let at = format!("{field}.publish.{name}");
        let action = match (p.tag_ref, p.stream) {
            (Some(t), None) => {
                if t.value.is_empty()
                    || !t
                        .value
                        .bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
                {
                    ck.at(
                        t.referenced,
                        format!("{at}.tag_ref"),
                        format!(
                            "'{}' is not a tag (letters, digits, '.', '_', '-')",
                            t.value
                        ),
                    );
                }
                PublishAction::TagRef(t.value)
            }
            (None, Some(s)) => {
                if s.value == stream {
                    ck.at(
                        s.referenced,
                        format!("{at}.stream"),
                        "a stream cannot inherit from itself",
                    );
                } else if !streams.contains(&s.value) {
                    ck.at(
                        s.referenced,
                        format!("{at}.stream"),
                        format!("no stream '{}' (streams: {})", s.value, streams.join(", ")),
                    );
                }
                PublishAction::Stream {
                    stream: s.value,
                    tags: p.tags,
                    exclude_tags: p.exclude_tags,
                }
            }
            (t, s) => {
                let where_ = t.map(|t| t.referenced).or(s.map(|s| s.referenced));
                ck.at(
                    where_.unwrap_or(raw.name.referenced),
                    at,
                    "give exactly one of tag_ref or stream",
                );
                continue;
            }
        };
        if !p.disabled {
            publish.insert(name, action);
        }
    }
    let promote = raw
        .promote
        .map(|p| promote(ck, &field, &raw.name, &verify, p))
        .and_then(|p| p);
    Release {
        name: raw.name.value,
        max_unready: raw.max_unready.unwrap_or(0),
        min_interval,
        expires,
        verify,
        checks: match raw.checks {
            None => Checks::default(),
            Some(c) => Checks {
                consistency: c.consistency.unwrap_or(true),
                base_image_policy: match c.base_image_policy {
                    None | Some(PolicySetting::Enabled(true)) => Some(Default::default()),
                    Some(PolicySetting::Enabled(false)) => None,
                    Some(PolicySetting::Policy(p)) => Some(p),
                },
            },
        },
        publish,
        promote,
    }
}

fn promote(
    ck: &mut Checker,
    field: &str,
    prefix: &Spanned<String>,
    verify: &IndexMap<String, Verify>,
    p: RawPromote,
) -> Option<Promote> {
    let at = format!("{field}.promote");
    let schedule = match (p.every, p.cron) {
        (Some(every), None) => {
            let d = duration(ck, format!("{at}.every"), Some(every))?;
            Schedule::Every(d)
        }
        (None, Some(cron)) => match cron.value.parse::<croner::Cron>() {
            Ok(c) => Schedule::Cron(Box::new(super::model::Rebuild {
                expression: cron.value,
                cron: c,
            })),
            Err(e) => {
                ck.at(
                    cron.referenced,
                    format!("{at}.cron"),
                    format!(
                        "'{}' is not a cron expression ({e}); e.g. '0 0 * * 1' for Mondays 00:00 UTC",
                        cron.value
                    ),
                );
                return None;
            }
        },
        (every, cron) => {
            let loc = every
                .map(|e| e.referenced)
                .or(cron.map(|c| c.referenced))
                .unwrap_or(prefix.referenced);
            ck.at(loc, at, "give exactly one of every (e.g. 14d) or cron");
            return None;
        }
    };
    let name = match p.name {
        Some(n) => {
            let example = n.value.replace("{n}", "0");
            if !n.value.contains("{n}") || payload::version::ReleaseName::parse(&example).is_err() {
                ck.at(
                    n.referenced,
                    format!("{at}.name"),
                    format!(
                        "'{}' must contain {{n}} and make a semantic version (e.g. 4.17.0-okd-scos.{{n}})",
                        n.value
                    ),
                );
            }
            n.value
        }
        None => match default_stable_template(&prefix.value) {
            Some(t) => t,
            None => {
                ck.at(
                    prefix.referenced,
                    format!("{at}.name"),
                    format!(
                        "no default stable name for '{}' (not X.Y.Z-0.SUFFIX); give promote.name",
                        prefix.value
                    ),
                );
                return None;
            }
        },
    };
    let channels = p.channels.unwrap_or_else(|| {
        semver::Version::parse(&name.replace("{n}", "0"))
            .map(|v| {
                vec![
                    format!("stable-{}", v.major),
                    format!("stable-{}.{}", v.major, v.minor),
                ]
            })
            .unwrap_or_default()
    });
    let require = match p.require {
        None => verify
            .iter()
            .filter(|(_, v)| v.upgrade_from.is_some())
            .map(|(n, _)| n.clone())
            .collect(),
        Some(jobs) => {
            let mut out = Vec::new();
            for j in jobs {
                if !verify.contains_key(&j.value) {
                    ck.at(
                        j.referenced,
                        format!("{at}.require"),
                        format!(
                            "no verify job '{}' (jobs: {})",
                            j.value,
                            verify.keys().cloned().collect::<Vec<_>>().join(", ")
                        ),
                    );
                }
                out.push(j.value);
            }
            out
        }
    };
    Some(Promote {
        schedule,
        name,
        channels,
        require,
    })
}

mod seconds {
    pub fn serialize<S: serde::Serializer>(
        d: &std::time::Duration,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_u64(d.as_secs())
    }
}

mod opt_seconds {
    pub fn serialize<S: serde::Serializer>(
        d: &Option<std::time::Duration>,
        s: S,
    ) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&d.as_secs()),
            None => s.serialize_none(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::parse;
    use std::path::Path;

    const BASE: &str = "\
variants: { okd-scos: {} }
components:
  cvo:
    git: https://github.com/openshift/cluster-version-operator
    images: [ { to: cluster-version-operator, containerfile: Dockerfile } ]
leases: { aws-quota: 2, gcp-quota: 1 }
streams:
  okd-scos-4.16: { variant: okd-scos, branch: release-4.16 }
  okd-scos-4.17:
    variant: okd-scos
    branch: release-4.17
    release:
";

    fn problems(release: &str) -> Vec<String> {
        match parse(&format!("{BASE}{release}"), "forge.yaml", Path::new("/cfg")) {
            Ok(_) => panic!("should fail:\n{release}"),
            Err(e) => e.problems().iter().map(ToString::to_string).collect(),
        }
    }

    #[test]
    fn a_release_block_becomes_the_model() {
        let c = parse(
            &format!(
                "{BASE}      name: 4.17.0-0.okd-scos
      max_unready: 1
      min_interval: 1h
      expires: 72h
      verify:
        e2e-aws: {{ command: [./hack/e2e.sh, aws], max_retries: 1, leases: [aws-quota], env: {{ A: b }} }}
        upgrade: {{ command: [./hack/upgrade.sh], upgrade_from: all_previous_stable, optional: true, timeout: 6h }}
        upgrade-minor: {{ command: [u], upgrade_from: okd-scos-4.16 }}
        plain-upgrade: {{ command: [u], upgrade: true, image: quay.io/okd/tests:4.17 }}
        off: {{ command: [x], disabled: true }}
      promote: {{ every: 14d }}
"
            ),
            "forge.yaml",
            Path::new("/cfg"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(c.leases["aws-quota"], 2);
        let r = c.streams["okd-scos-4.17"].release.as_ref().unwrap();
        assert_eq!(r.name, "4.17.0-0.okd-scos");
        assert_eq!(
            (r.max_unready, r.min_interval, r.expires),
            (
                1,
                Duration::from_secs(3600),
                Some(Duration::from_secs(259_200))
            )
        );
        let names: Vec<&str> = r.verify.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            ["e2e-aws", "upgrade", "upgrade-minor", "plain-upgrade"],
            "disabled jobs are dropped"
        );
        let e2e = &r.verify["e2e-aws"];
        assert_eq!(e2e.command, ["./hack/e2e.sh", "aws"]);
        assert_eq!(
            (e2e.max_retries, e2e.timeout, e2e.optional),
            (1, DEFAULT_TIMEOUT, false)
        );
        assert_eq!(
            (e2e.leases.as_slice(), e2e.upgrade_from.as_ref()),
            (["aws-quota".to_string()].as_slice(), None)
        );
        assert_eq!(e2e.env["A"], "b");
        let up = &r.verify["upgrade"];
        assert_eq!(up.upgrade_from, Some(UpgradeFrom::AllPreviousStable));
        assert!(up.optional);
        assert_eq!(up.timeout, Duration::from_secs(6 * 3600));
        assert_eq!(
            r.verify["upgrade-minor"].upgrade_from,
            Some(UpgradeFrom::Stream("okd-scos-4.16".into()))
        );
        assert_eq!(
            r.verify["plain-upgrade"].upgrade_from,
            Some(UpgradeFrom::Previous)
        );
        assert_eq!(
            r.verify["plain-upgrade"].image.as_deref(),
            Some("quay.io/okd/tests:4.17")
        );
        let promote = r.promote.as_ref().unwrap();
        assert!(
            matches!(promote.schedule, Schedule::Every(d) if d == Duration::from_secs(14 * 86_400))
        );
        assert_eq!(promote.stable_name(3), "4.17.0-okd-scos.3");
        assert_eq!(promote.channels, ["stable-4", "stable-4.17"]);
        assert_eq!(
            promote.require,
            ["upgrade", "upgrade-minor", "plain-upgrade"],
            "every upgrade job by default"
        );
        assert_eq!(promote.next_due(None), i64::MIN, "the first is due at once");
        assert_eq!(promote.next_due(Some(100)), 100 + 14 * 86_400);
        assert_eq!(r.checks, Checks::default(), "both checks by default");
    }

    #[test]
    fn checks_are_on_by_default_and_take_a_policy() {
        let checks = |yaml: &str| {
            let c = parse(
                &format!("{BASE}      name: 4.17.0-0.okd-scos\n      checks: {yaml}\n"),
                "forge.yaml",
                Path::new("/cfg"),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            c.streams["okd-scos-4.17"].release.clone().unwrap().checks
        };
        assert_eq!(checks("{}"), Checks::default());
        assert_eq!(
            checks("{ consistency: false, base_image_policy: false }"),
            Checks {
                consistency: false,
                base_image_policy: None
            }
        );
        let custom =
            checks("{ base_image_policy: { allow: [ { id: centos, version_id: \"9\" } ] } }");
        let policy = custom.base_image_policy.unwrap();
        assert_eq!(policy.allow.len(), 1);
        assert_eq!(
            policy.deny,
            crate::config::policy::Policy::default().deny,
            "a list left out keeps the default"
        );
        let p = problems(
            "      name: 4.17.0-0.okd-scos\n      checks: { base_image_policy: { allow: [ { idd: centos } ] } }\n",
        );
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("forge.yaml:14:"), "{p:?}");
        assert!(p[0].contains("idd"), "{p:?}");
    }

    #[test]
    fn release_problems_name_line_column_and_field() {
        assert_eq!(
            problems("      name: okd-scos\n"),
            ["forge.yaml:13:13: streams.okd-scos-4.17.release.name: 'okd-scos' cannot prefix payload names: 'okd-scos-2026-01-01-000000' must be a semantic version (e.g. 4.17.0-0.okd-scos)"]
        );
        assert_eq!(
            problems("      name: 4.17.0-0.okd-scos\n      min_interval: an hour\n"),
            ["forge.yaml:14:21: streams.okd-scos-4.17.release.min_interval: 'an hour' is not a duration; write e.g. 90s, 30m, 1h30m, 72h or 14d"]
        );
        let p = problems(
            "      name: 4.17.0-0.okd-scos
      verify:
        e2e-1: { command: [x] }
        up: { command: [], upgrade_from: okd-4.99, leases: [azure-quota] }
",
        );
        assert_eq!(
            p,
            [
                "forge.yaml:15:27: streams.okd-scos-4.17.release.verify.e2e-1: a job name must not end in -<digits> (that suffix numbers retries)",
                "forge.yaml:16:24: streams.okd-scos-4.17.release.verify.up.command: the command needs at least a program",
                "forge.yaml:16:42: streams.okd-scos-4.17.release.verify.up.upgrade_from: 'okd-4.99' is neither previous, previous_minor, all_previous_stable nor a stream (streams: okd-scos-4.16, okd-scos-4.17)",
                "forge.yaml:16:61: streams.okd-scos-4.17.release.verify.up.leases: no lease pool 'azure-quota'; define it under the top-level `leases:` (pools: aws-quota, gcp-quota)",
            ]
        );
        let p = problems(
            "      name: 4.17.0-0.okd-scos\n      verify: { e2e: { command: [x], retries: 2 } }\n",
        );
        assert_eq!(p.len(), 1);
        assert!(p[0].starts_with("forge.yaml:14:"), "{p:?}");
        assert!(p[0].contains("unknown field `retries`"), "{p:?}");
    }

    #[test]
    fn publish_actions_are_tag_refs_or_inheritance() {
        let c = parse(
            &format!(
                "{BASE}      name: 4.17.0-0.okd-scos
      publish:
        tag: {{ tag_ref: scos-4.17 }}
        okd: {{ stream: okd-scos-4.16, exclude_tags: [installer, machine-os-content] }}
        off: {{ tag_ref: x, disabled: true }}
"
            ),
            "forge.yaml",
            Path::new("/cfg"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let r = c.streams["okd-scos-4.17"].release.as_ref().unwrap();
        assert_eq!(r.publish.len(), 2, "disabled actions are dropped");
        assert_eq!(r.publish["tag"], PublishAction::TagRef("scos-4.17".into()));
        let okd = &r.publish["okd"];
        assert!(okd.takes("cli") && !okd.takes("installer") && !okd.takes("machine-os-content"));
        let only = PublishAction::Stream {
            stream: "s".into(),
            tags: vec!["cli".into()],
            exclude_tags: vec![],
        };
        assert!(only.takes("cli") && !only.takes("installer"));
        assert_eq!(
            problems("      name: 4.17.0-0.okd-scos\n      publish: { a: { stream: okd-4.99 }, b: { tag_ref: 'x y' }, c: {} , d: { stream: okd-scos-4.17 } }\n"),
            [
                "forge.yaml:14:31: streams.okd-scos-4.17.release.publish.a.stream: no stream 'okd-4.99' (streams: okd-scos-4.16, okd-scos-4.17)",
                "forge.yaml:14:57: streams.okd-scos-4.17.release.publish.b.tag_ref: 'x y' is not a tag (letters, digits, '.', '_', '-')",
                "forge.yaml:13:13: streams.okd-scos-4.17.release.publish.c: give exactly one of tag_ref or stream",
                "forge.yaml:14:87: streams.okd-scos-4.17.release.publish.d.stream: a stream cannot inherit from itself",
            ]
        );
    }

    #[test]
    fn promote_settings_and_their_problems() {
        let promote = |yaml: &str| {
            let c = parse(
                &format!("{BASE}      name: 4.17.0-0.okd-scos\n      verify: {{ up: {{ command: [u], upgrade: true }} }}\n      promote: {yaml}\n"),
                "forge.yaml",
                Path::new("/cfg"),
            )
            .unwrap_or_else(|e| panic!("{e}"));
            c.streams["okd-scos-4.17"]
                .release
                .clone()
                .unwrap()
                .promote
                .unwrap()
        };
        let p = promote("{ cron: '0 0 * * 1', name: '4.17.0-okd-scos.{n}', channels: [stable-scos-4], require: [] }");
        assert!(p.require.is_empty());
        assert_eq!(p.channels, ["stable-scos-4"]);
        // 2026-11-24 is a Tuesday; the next Monday 00:00 UTC is 2026-11-30.
        let tuesday = 1_795_478_400;
        assert_eq!(p.next_due(Some(tuesday)), tuesday + 6 * 86_400);
        let p = problems(
            "      name: 4.17.0-0.okd-scos\n      promote: { every: 14d, cron: '* * * * *' }\n",
        );
        assert_eq!(p, ["forge.yaml:14:25: streams.okd-scos-4.17.release.promote: give exactly one of every (e.g. 14d) or cron"]);
        let p = problems(
            "      name: 4.17.0-0.okd-scos\n      promote: { every: 14d, name: 4.17.0-okd-scos, require: [e2e] }\n",
        );
        assert_eq!(p.len(), 2, "{p:?}");
        assert!(
            p[0].contains("promote.name: '4.17.0-okd-scos' must contain {n}"),
            "{p:?}"
        );
        assert!(
            p[1].contains("promote.require: no verify job 'e2e'"),
            "{p:?}"
        );
    }

    #[test]
    fn durations() {
        for (text, secs) in [
            ("90s", 90),
            ("30m", 1800),
            ("1h30m", 5400),
            ("72h", 259_200),
            ("14d", 1_209_600),
            ("0s", 0),
        ] {
            assert_eq!(
                parse_duration(text),
                Some(Duration::from_secs(secs)),
                "{text}"
            );
        }
        for bad in ["", "1", "h", "1x", "-1h", "1.5h", "1h 30m"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }
}
