//! The base-image policy as data, and its verdict on one image as a pure function of the image's
//! os-release fields and config labels.
//!
//! A [`Rule`] matches when every condition it sets holds: os-release `ID`, `VERSION_ID` (globs on the
//! value), `ID_LIKE` (a glob matching any of its words) and config labels (each key's value matches
//! its glob). Globs know `*` (any run of characters) and `?` (one character); everything else is
//! literal and case-sensitive. An image is judged in this order:
//! 1. a `deny` rule matches: violation;
//! 2. it has no os-release (scratch, static binaries): allowed, and noted;
//! 3. an `allow` rule matches: allowed;
//! 4. otherwise: violation (its OS is not allowed).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Which OS bases component images may have.
///
/// In `forge.yaml`, under a stream's `release: { checks: { base_image_policy: … } }`. A list that is
/// given replaces the default list; a list left out keeps the default ([`Policy::default`]).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Policy {
    /// An image whose os-release matches one of these is allowed (unless a `deny` rule matches).
    pub allow: Vec<Rule>,
    /// An image that matches one of these is a violation, whatever else holds.
    pub deny: Vec<Rule>,
}

impl Default for Policy {
    /// Fedora, CentOS (Stream) and UBI are allowed; OpenShift Container Platform images are denied:
    ///
    /// ```yaml
    /// allow:
    ///   - id: fedora
    ///   - id: centos
    ///   - id: scos          # CentOS Stream CoreOS
    ///   - { id: rhel, labels: { name: "ubi*" } }
    ///   - { id: rhel, labels: { com.redhat.component: "ubi*-container" } }
    /// deny:
    ///   - labels: { com.redhat.component: "openshift-enterprise-*-container" }
    ///   - labels: { com.redhat.component: "ose-*-container" }
    ///   - labels: { name: "openshift/ose-*" }
    /// ```
    ///
    /// UBI images say `ID=rhel` in os-release, so UBI is recognised by the labels Red Hat sets on
    /// its UBI images (`name` `ubi9`, `ubi9/ubi-minimal`, …; `com.redhat.component`
    /// `ubi9-container`, `ubi9-minimal-container`, …), which images built `FROM` them inherit. An
    /// `ID=rhel` image without them is not allowed.
    fn default() -> Policy {
        let id = |id: &str| Rule {
            id: Some(id.into()),
            ..Rule::default()
        };
        let rhel_with = |key: &str, glob: &str| Rule {
            id: Some("rhel".into()),
            labels: BTreeMap::from([(key.to_string(), glob.to_string())]),
            ..Rule::default()
        };
        let label = |key: &str, glob: &str| Rule {
            labels: BTreeMap::from([(key.to_string(), glob.to_string())]),
            ..Rule::default()
        };
        Policy {
            allow: vec![
                id("fedora"),
                id("centos"),
                id("scos"),
                rhel_with(NAME, "ubi*"),
                rhel_with(COMPONENT, "ubi*-container"),
            ],
            deny: vec![
                label(COMPONENT, "openshift-enterprise-*-container"),
                label(COMPONENT, "ose-*-container"),
                label(NAME, "openshift/ose-*"),
            ],
        }
    }
}

/// Label: the image's name (`ubi9`, `openshift/ose-cli`).
pub const NAME: &str = "name";
/// Label: Red Hat's build component (`ubi9-container`, `ose-cli-container`).
pub const COMPONENT: &str = "com.redhat.component";
/// Label: who made the image (`Red Hat, Inc.`).
pub const VENDOR: &str = "vendor";

/// Conditions on one image; all that are set must hold. A rule sets at least one (deserialising an
/// empty rule fails; an empty rule built in code matches every image).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "RawRule")]
pub struct Rule {
    /// Glob on os-release `ID`, e.g. `fedora`, `centos`, `rhel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
    /// Glob on os-release `VERSION_ID`, e.g. `9*`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version_id: Option<String>,
    /// Glob that one of the words of os-release `ID_LIKE` must match, e.g. `rhel`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id_like: Option<String>,
    /// Config labels: each key must be set, with a value its glob matches.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// [`Rule`] as written, before the check that it sets a condition.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawRule {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    version_id: Option<String>,
    #[serde(default)]
    id_like: Option<String>,
    #[serde(default)]
    labels: BTreeMap<String, String>,
}

impl TryFrom<RawRule> for Rule {
    type Error = String;

    fn try_from(r: RawRule) -> Result<Rule, String> {
        if r.id.is_none() && r.version_id.is_none() && r.id_like.is_none() && r.labels.is_empty() {
            return Err(
                "a base-image policy rule needs at least one of id, version_id, id_like, labels"
                    .into(),
            );
        }
        Ok(Rule {
            id: r.id,
            version_id: r.version_id,
            id_like: r.id_like,
            labels: r.labels,
        })
    }
}

impl Rule {
    /// If the rule matches, what matched (`os-release ID=rhel`, `label name=ubi9`), else `None`.
    /// Without os-release, a rule with an os-release condition does not match.
    pub fn matches(
        &self,
        os_release: Option<&BTreeMap<String, String>>,
        labels: &BTreeMap<String, String>,
    ) -> Option<Vec<String>> {
        let mut matched = Vec::new();
        let field = |key: &str| os_release.and_then(|o| o.get(key)).map(String::as_str);
        for (key, glob) in [("ID", &self.id), ("VERSION_ID", &self.version_id)] {
            if let Some(glob) = glob {
                let value = field(key).filter(|v| glob_match(glob, v))?;
                matched.push(format!("os-release {key}={value}"));
            }
        }
        if let Some(glob) = &self.id_like {
            let value = field("ID_LIKE")?;
            let word = value.split_whitespace().find(|w| glob_match(glob, w))?;
            matched.push(format!("os-release ID_LIKE={value} (has {word})"));
        }
        for (key, glob) in &self.labels {
            let value = labels.get(key).filter(|v| glob_match(glob, v))?;
            matched.push(format!("label {key}={value}"));
        }
        Some(matched)
    }

    /// The rule as written, for messages: `{id: rhel, labels: {name: ubi*}}`.
    pub fn describe(&self) -> String {
        let mut parts = Vec::new();
        for (key, v) in [
            ("id", &self.id),
            ("version_id", &self.version_id),
            ("id_like", &self.id_like),
        ] {
            if let Some(v) = v {
                parts.push(format!("{key}: {v}"));
            }
        }
        if !self.labels.is_empty() {
            let labels: Vec<String> = self
                .labels
                .iter()
                .map(|(k, v)| format!("{k}: {v}"))
                .collect();
            parts.push(format!("labels: {{{}}}", labels.join(", ")));
        }
        format!("{{{}}}", parts.join(", "))
    }
}

/// The policy's verdict on one image.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// A deny rule matched: the rule and what matched.
    Denied {
        /// The rule, described.
        rule: String,
        /// What matched.
        matched: Vec<String>,
    },
    /// The image has an os-release, and no allow rule matches it.
    NotAllowed,
    /// An allow rule matched.
    Allowed {
        /// The rule, described.
        rule: String,
    },
    /// The image has no os-release (scratch, static binaries): allowed, noted.
    NoOsRelease,
}

impl Policy {
    /// Judge an image by its os-release fields (`None`: it has none) and config labels.
    pub fn judge(
        &self,
        os_release: Option<&BTreeMap<String, String>>,
        labels: &BTreeMap<String, String>,
    ) -> Verdict {
        for rule in &self.deny {
            if let Some(matched) = rule.matches(os_release, labels) {
                return Verdict::Denied {
                    rule: rule.describe(),
                    matched,
                };
            }
        }
        if os_release.is_none() {
            return Verdict::NoOsRelease;
        }
        match self
            .allow
            .iter()
            .find(|r| r.matches(os_release, labels).is_some())
        {
            Some(rule) => Verdict::Allowed {
                rule: rule.describe(),
            },
            None => Verdict::NotAllowed,
        }
    }
}

/// Whether `text` matches `glob` (`*`: any run of characters, `?`: one character).
pub fn glob_match(glob: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (glob.chars().collect(), text.chars().collect());
    let (mut pi, mut ti) = (0, 0);
    // Where the last `*` was, and the text position it has consumed up to.
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match p.get(pi) {
            Some('*') => {
                star = Some((pi, ti));
                pi += 1;
            }
            Some(&c) if c == '?' || c == t[ti] => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p[pi..].iter().all(|&c| c == '*')
}

/// os-release fields (os-release(5)): `KEY=value` lines, values optionally in single or double
/// quotes (with `\"`, `\\`, `\$` and `` \` `` escapes in double quotes); comments and other lines
/// are skipped.
pub fn parse_os_release(text: &str) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') {
            continue;
        }
        let Some((key, value)) = line.split_once('=') else {
            continue;
        };
        let key = key.trim();
        if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_') {
            continue;
        }
        let value = value.trim();
        let value = if let Some(inner) = value.strip_prefix('"').and_then(|v| v.strip_suffix('"')) {
            let mut s = String::new();
            let mut chars = inner.chars();
            while let Some(c) = chars.next() {
                match (c, chars.clone().next()) {
                    ('\\', Some(n @ ('"' | '\\' | '$' | '`'))) => {
                        s.push(n);
                        chars.next();
                    }
                    _ => s.push(c),
                }
            }
            s
        } else if let Some(inner) = value.strip_prefix('\'').and_then(|v| v.strip_suffix('\'')) {
            inner.to_string()
        } else {
            value.to_string()
        };
        out.insert(key.to_string(), value);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn globs() {
        for (glob, text, want) in [
            ("ubi*", "ubi9", true),
            ("ubi*", "ubi9/ubi-minimal", true),
            ("ubi*-container", "ubi9-minimal-container", true),
            ("ubi*-container", "ubi9-minimal", false),
            ("ose-*-container", "ose-cli-container", true),
            (
                "ose-*-container",
                "openshift-enterprise-cli-container",
                false,
            ),
            ("9.?", "9.4", true),
            ("9.?", "9.10", false),
            ("*", "", true),
            ("fedora", "Fedora", false),
            ("a*b*c", "axxbyyc", true),
            ("a*b*c", "axxbyy", false),
        ] {
            assert_eq!(glob_match(glob, text), want, "{glob} ~ {text}");
        }
    }

    #[test]
    fn os_release_values_may_be_quoted() {
        let f = parse_os_release(
            "# comment\nNAME=\"Red Hat Enterprise Linux\"\nID=\"rhel\"\nID_LIKE='fedora'\n\
             VERSION_ID=9.4\nPRETTY_NAME=\"say \\\"hi\\\"\"\nnot a line\n",
        );
        assert_eq!(f["ID"], "rhel");
        assert_eq!(f["ID_LIKE"], "fedora");
        assert_eq!(f["VERSION_ID"], "9.4");
        assert_eq!(f["NAME"], "Red Hat Enterprise Linux");
        assert_eq!(f["PRETTY_NAME"], "say \"hi\"");
        assert_eq!(f.len(), 5);
    }

    #[test]
    fn the_default_policy_allows_fedora_centos_and_ubi_and_denies_other_rhel() {
        let p = Policy::default();
        let os = |id: &str| parse_os_release(&format!("ID={id}\nVERSION_ID=9\n"));
        let none = labels(&[]);
        assert!(matches!(
            p.judge(Some(&os("fedora")), &none),
            Verdict::Allowed { .. }
        ));
        assert!(matches!(
            p.judge(Some(&os("centos")), &none),
            Verdict::Allowed { .. }
        ));
        let ubi = labels(&[
            (VENDOR, "Red Hat, Inc."),
            (NAME, "ubi9/ubi-minimal"),
            (COMPONENT, "ubi9-minimal-container"),
        ]);
        assert!(matches!(
            p.judge(Some(&os("rhel")), &ubi),
            Verdict::Allowed { .. }
        ));
        // Built FROM ubi9 with its own name: the component label still says UBI.
        let from_ubi = labels(&[(NAME, "okd/thing"), (COMPONENT, "ubi9-container")]);
        assert!(matches!(
            p.judge(Some(&os("rhel")), &from_ubi),
            Verdict::Allowed { .. }
        ));
        assert_eq!(p.judge(Some(&os("rhel")), &none), Verdict::NotAllowed);
        assert_eq!(p.judge(Some(&os("debian")), &none), Verdict::NotAllowed);
        assert_eq!(p.judge(None, &none), Verdict::NoOsRelease);
        // An OCP image on UBI: denied by its labels, whatever its os-release says.
        let ose = labels(&[(NAME, "ubi9"), (COMPONENT, "ose-cli-container")]);
        assert_eq!(
            p.judge(Some(&os("rhel")), &ose),
            Verdict::Denied {
                rule: "{labels: {com.redhat.component: ose-*-container}}".into(),
                matched: vec!["label com.redhat.component=ose-cli-container".into()],
            }
        );
        // Even without an os-release.
        let scratch = labels(&[(NAME, "openshift/ose-cli")]);
        assert!(matches!(p.judge(None, &scratch), Verdict::Denied { .. }));
    }

    #[test]
    fn rules_need_every_condition() {
        let rule = Rule {
            id: Some("rhel".into()),
            version_id: Some("9.*".into()),
            id_like: Some("fedora".into()),
            labels: labels(&[("vendor", "Red Hat*")]),
        };
        let os = parse_os_release("ID=rhel\nVERSION_ID=9.4\nID_LIKE=\"centos fedora\"\n");
        let l = labels(&[("vendor", "Red Hat, Inc.")]);
        assert_eq!(
            rule.matches(Some(&os), &l).unwrap(),
            [
                "os-release ID=rhel",
                "os-release VERSION_ID=9.4",
                "os-release ID_LIKE=centos fedora (has fedora)",
                "label vendor=Red Hat, Inc.",
            ]
        );
        assert_eq!(rule.matches(Some(&os), &labels(&[])), None);
        assert_eq!(rule.matches(None, &l), None);
        let os8 = parse_os_release("ID=rhel\nVERSION_ID=8.10\nID_LIKE=fedora\n");
        assert_eq!(rule.matches(Some(&os8), &l), None);
    }

    #[test]
    fn deserialises_with_defaults_and_refuses_empty_or_misspelt_rules() {
        let p: Policy = serde_json::from_str(r#"{"allow": [{"id": "fedora"}]}"#).unwrap();
        assert_eq!(p.allow.len(), 1);
        assert_eq!(p.deny, Policy::default().deny);
        let p: Policy = serde_json::from_str("{}").unwrap();
        assert_eq!(p, Policy::default());
        let e = serde_json::from_str::<Policy>(r#"{"deny": [{}]}"#).unwrap_err();
        assert!(e.to_string().contains("at least one of"), "{e}");
        let e = serde_json::from_str::<Policy>(r#"{"allow": [{"ids": "x"}]}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        let e = serde_json::from_str::<Policy>(r#"{"alow": []}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field"), "{e}");
        // Serialising and reading back gives the same policy.
        let text = serde_json::to_string(&Policy::default()).unwrap();
        assert_eq!(
            serde_json::from_str::<Policy>(&text).unwrap(),
            Policy::default()
        );
    }
}
