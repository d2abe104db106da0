//! The update graph that clusters follow (Cincinnati protocol, `../shared/specs/cincinnati.md`).
//!
//! A pure library: [`Catalog::from_records`] (or [`Catalog::new`]) gathers the stable releases
//! and their upgrade edges once; [`Catalog::graph`] filters them by channel and architecture into
//! a [`Graph`], and [`Graph::to_bytes`] serialises it once, as the Cincinnati JSON
//! `{"version":1,"nodes":[…],"edges":[[i,j]],"conditionalEdges":[…]}`.
//!
//! What the cluster-version-operator requires (spec §4), and how it is kept:
//! - every node version is strict SemVer without build metadata (no `+arch`) and unique:
//!   releases whose name is not are left out ([`Catalog::skipped`] says why), since one bad
//!   node makes the CVO reject the whole response;
//! - a tested edge (one passing upgrade run) is a plain edge; a tested edge that was blocked by
//!   hand is a conditional edge only, with one risk (`url`, `name`, `message`, `matchingRules:
//!   [{type: Always}]`, all non-empty), and conditional edges are grouped by identical risks;
//! - conditional-edge versions are exactly node version strings, and both ends are nodes;
//! - `io.openshift.upgrades.graph.release.channels` is a non-empty sorted CSV (a release in no
//!   channel is in no channel's graph), `release.openshift.io/architecture` is only ever `multi`.
//!
//! [`Catalog::picture`] draws one channel's graph as SVG for the dashboard ([`picture`]).

use std::collections::{BTreeMap, BTreeSet};

use release::state::{Edge, Records};
use serde::Serialize;

pub mod picture;

/// The architecture of every release read from the records: neither the stream configuration
/// nor the payload records say which architecture a payload was built for (payloads are built
/// as single-architecture `amd64` images), so [`Catalog::from_records`] assumes this one.
pub const DEFAULT_ARCH: &str = "amd64";

/// The risk URL of an edge blocked without one (the API requires a non-empty URI).
pub const DEFAULT_RISK_URL: &str = "https://github.com/okd-project/okd-forge";

/// The metadata key of a node's channels (sorted, comma-separated).
pub const CHANNELS_KEY: &str = "io.openshift.upgrades.graph.release.channels";
/// The metadata key of a node's manifest digest.
pub const MANIFESTREF_KEY: &str = "io.openshift.upgrades.graph.release.manifestref";
/// The metadata key that marks a multi-architecture (manifest list) release.
pub const ARCH_KEY: &str = "release.openshift.io/architecture";

/// One stable release, as the graph needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Release {
    /// Its version (the stable release's name).
    pub version: String,
    /// Its pull spec, by digest.
    pub payload: String,
    /// Its manifest digest (`sha256:…`).
    pub digest: String,
    /// The channels it is in.
    pub channels: Vec<String>,
    /// Its architecture (`amd64`, `arm64`, … or `multi`).
    pub arch: String,
}

/// A risk of a conditional edge (serialised as Cincinnati's `risks[]` entries).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Risk {
    /// A link about it.
    pub url: String,
    /// A CamelCase name.
    pub name: String,
    /// For people.
    pub message: String,
    /// Always `[{"type":"Always"}]`.
    #[serde(rename = "matchingRules")]
    pub matching_rules: Vec<Rule>,
}

/// A matching rule of a risk.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Rule {
    /// `Always`.
    #[serde(rename = "type")]
    pub kind: String,
}

/// A node of the graph JSON.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Node {
    /// Strict SemVer.
    pub version: String,
    /// Pull spec by digest.
    pub payload: String,
    /// String values only.
    pub metadata: BTreeMap<String, String>,
}

/// One `{from, to}` pair of a conditional edge, by version.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize)]
pub struct Pair {
    /// The version upgraded from.
    pub from: String,
    /// The version upgraded to.
    pub to: String,
}

/// A conditional-edge entry: the pairs that share exactly these risks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConditionalEdge {
    /// The pairs.
    pub edges: Vec<Pair>,
    /// Their risks.
    pub risks: Vec<Risk>,
}

/// The graph of one (channel, architecture), in Cincinnati's JSON shape.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Graph {
    /// Always 1.
    pub version: u32,
    /// Sorted by version.
    pub nodes: Vec<Node>,
    /// `[from, to]` indices into `nodes`.
    pub edges: Vec<[usize; 2]>,
    /// Blocked edges with their risks.
    #[serde(rename = "conditionalEdges")]
    pub conditional_edges: Vec<ConditionalEdge>,
}

impl Graph {
    /// The graph with no nodes (an unknown channel's).
    pub fn empty() -> Graph {
        Graph {
            version: 1,
            nodes: Vec::new(),
            edges: Vec::new(),
            conditional_edges: Vec::new(),
        }
    }

    /// The Cincinnati JSON.
    pub fn to_bytes(&self) -> Vec<u8> {
        serde_json::to_vec(self).expect("a graph of strings and numbers serialises")
    }
}

/// Why a version is not one the cluster-version-operator accepts.
pub fn check_version(version: &str) -> Result<(), String> {
    let v = semver::Version::parse(version)
        .map_err(|e| format!("version {version:?} is not strict SemVer: {e}"))?;
    if !v.build.is_empty() {
        return Err(format!(
            "version {version:?} carries build metadata (+{}), which clients compare exactly",
            v.build
        ));
    }
    if v.to_string() != version {
        return Err(format!("version {version:?} is not in canonical form"));
    }
    Ok(())
}

/// Whether `channel` is a channel name clients can ask for (`^[0-9a-z\-\.]+$`).
pub fn valid_channel(channel: &str) -> bool {
    !channel.is_empty()
        && channel
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase() || b == b'-' || b == b'.')
}

/// Whether `arch` is an architecture name clients can ask for (`^[0-9a-z]+$`).
pub fn valid_arch(arch: &str) -> bool {
    !arch.is_empty()
        && arch
            .bytes()
            .all(|b| b.is_ascii_digit() || b.is_ascii_lowercase())
}

/// A CamelCase risk name from a block reason: its alphanumeric words capitalised, at most 64
/// characters, `BlockedUpgrade` when none are left.
pub fn risk_name(reason: &str) -> String {
    let mut name = String::new();
    for word in reason.split(|c: char| !c.is_ascii_alphanumeric()) {
        let mut chars = word.chars();
        if let Some(first) = chars.next() {
            name.push(first.to_ascii_uppercase());
            name.extend(chars);
        }
    }
    name.truncate(64);
    if name.is_empty() || name.starts_with(|c: char| c.is_ascii_digit()) {
        name.insert_str(0, "BlockedUpgrade");
    }
    name
}

fn risk_of(block: &release::state::Block) -> Risk {
    let reason = block.reason.trim();
    Risk {
        url: block
            .url
            .as_deref()
            .map(str::trim)
            .filter(|u| !u.is_empty())
            .unwrap_or(DEFAULT_RISK_URL)
            .to_string(),
        name: risk_name(reason),
        message: if reason.is_empty() {
            "this upgrade was blocked by hand".to_string()
        } else {
            reason.to_string()
        },
        matching_rules: vec![Rule {
            kind: "Always".to_string(),
        }],
    }
}

/// The stable releases and upgrade edges every (channel, architecture) graph is cut from.
#[derive(Debug, Clone, Default)]
pub struct Catalog {
    releases: BTreeMap<String, Release>,
    /// (from, to) → the risk when blocked; only tested edges between valid releases.
    edges: BTreeMap<(String, String), Option<Risk>>,
    /// Edges between valid releases with runs, none of which passed: not in any graph.
    failed: BTreeSet<(String, String)>,
    skipped: Vec<String>,
}

impl Catalog {
    /// The catalog of `releases` and `edges` (as [`Records::edges`] lists them). Releases with
    /// an invalid version, no payload or a repeated version are left out with the reason in
    /// [`Catalog::skipped`]; edges not tested, self-loops and edges to unknown releases too.
    pub fn new(releases: impl IntoIterator<Item = Release>, edges: &[Edge]) -> Catalog {
        let mut catalog = Catalog::default();
        for r in releases {
            if let Err(why) = check_version(&r.version) {
                catalog.skipped.push(why);
            } else if r.payload.is_empty() {
                catalog
                    .skipped
                    .push(format!("release {} has no pull spec", r.version));
            } else if catalog.releases.contains_key(&r.version) {
                catalog
                    .skipped
                    .push(format!("release {} is recorded twice", r.version));
            } else {
                catalog.releases.insert(r.version.clone(), r);
            }
        }
        for e in edges {
            if e.from == e.to {
                continue;
            }
            if !catalog.releases.contains_key(&e.from) || !catalog.releases.contains_key(&e.to) {
                continue;
            }
            if !e.tested() {
                if !e.runs.is_empty() {
                    catalog.failed.insert((e.from.clone(), e.to.clone()));
                }
                continue;
            }
            catalog.edges.insert(
                (e.from.clone(), e.to.clone()),
                e.blocked.as_ref().map(risk_of),
            );
        }
        catalog
    }

    /// The catalog of the stable releases of `streams` in `records`, all of architecture
    /// [`DEFAULT_ARCH`] (see there).
    pub fn from_records<'s>(
        records: &Records<'_>,
        streams: impl IntoIterator<Item = &'s str>,
    ) -> Result<Catalog, build::state::StateError> {
        let mut releases = Vec::new();
        for stream in streams {
            for p in records.payloads(stream)? {
                if p.stable_of.is_none() {
                    continue;
                }
                let payload = p.pull_spec.clone().unwrap_or_default();
                let digest = p
                    .digest
                    .clone()
                    .or_else(|| payload.rsplit_once('@').map(|(_, d)| d.to_string()))
                    .unwrap_or_default();
                releases.push(Release {
                    version: p.name,
                    payload,
                    digest,
                    channels: p.channels,
                    arch: DEFAULT_ARCH.to_string(),
                });
            }
        }
        Ok(Catalog::new(releases, &records.edges()?))
    }

    /// Why releases were left out.
    pub fn skipped(&self) -> &[String] {
        &self.skipped
    }

    /// Every (valid) channel of some release.
    pub fn channels(&self) -> BTreeSet<&str> {
        self.releases
            .values()
            .flat_map(|r| r.channels.iter().map(String::as_str))
            .filter(|c| valid_channel(c))
            .collect()
    }

    /// Every architecture of some release.
    pub fn arches(&self) -> BTreeSet<&str> {
        self.releases.values().map(|r| r.arch.as_str()).collect()
    }

    /// The picture of [`Catalog::graph`] as SVG ([`picture::svg`]), with the failed upgrades
    /// among its releases too (drawn, not served); `id` keeps its element ids apart from those
    /// of other pictures on the same page.
    pub fn picture(&self, channel: &str, arch: &str, id: &str) -> String {
        let graph = self.graph(channel, arch);
        let failed: Vec<Pair> = self
            .failed
            .iter()
            .filter(|(f, t)| {
                let in_graph = |v: &str| graph.nodes.iter().any(|n| n.version == v);
                in_graph(f) && in_graph(t)
            })
            .map(|(from, to)| Pair {
                from: from.clone(),
                to: to.clone(),
            })
            .collect();
        picture::svg(&graph, &failed, id)
    }

    /// The graph of the releases in `channel` of architecture `arch`, with the edges among them.
    pub fn graph(&self, channel: &str, arch: &str) -> Graph {
        let mut graph = Graph::empty();
        let mut index = BTreeMap::new();
        let mut chosen: Vec<&Release> = self
            .releases
            .values()
            .filter(|r| r.arch == arch && r.channels.iter().any(|c| c == channel))
            .collect();
        chosen.sort_by(|a, b| {
            let va = semver::Version::parse(&a.version).expect("checked");
            let vb = semver::Version::parse(&b.version).expect("checked");
            va.cmp(&vb)
        });
        for r in chosen {
            index.insert(r.version.as_str(), graph.nodes.len());
            let channels: BTreeSet<&str> = r
                .channels
                .iter()
                .map(String::as_str)
                .filter(|c| valid_channel(c))
                .collect();
            let mut metadata = BTreeMap::new();
            metadata.insert(
                CHANNELS_KEY.to_string(),
                channels.into_iter().collect::<Vec<_>>().join(","),
            );
            if !r.digest.is_empty() {
                metadata.insert(MANIFESTREF_KEY.to_string(), r.digest.clone());
            }
            if r.arch == "multi" {
                metadata.insert(ARCH_KEY.to_string(), "multi".to_string());
            }
            graph.nodes.push(Node {
                version: r.version.clone(),
                payload: r.payload.clone(),
                metadata,
            });
        }
        let mut conditional: BTreeMap<&Risk, Vec<Pair>> = BTreeMap::new();
        for ((from, to), risk) in &self.edges {
            let (Some(&f), Some(&t)) = (index.get(from.as_str()), index.get(to.as_str())) else {
                continue;
            };
            match risk {
                None => graph.edges.push([f, t]),
                Some(risk) => conditional.entry(risk).or_default().push(Pair {
                    from: from.clone(),
                    to: to.clone(),
                }),
            }
        }
        graph.conditional_edges = conditional
            .into_iter()
            .map(|(risk, edges)| ConditionalEdge {
                edges,
                risks: vec![risk.clone()],
            })
            .collect();
        graph
    }
}
