//! A picture of one channel's update graph, as SVG text for the dashboard: no script, no styles
//! or fonts from elsewhere, readable without JavaScript.
//!
//! Layered by version, left to right: one column per minor (`4.17`, `4.18`, …), its releases top
//! to bottom in version order. An edge between columns is a curve from the right side of one
//! node to the left side of the other; an edge within a column bows out to the column's right.
//! Edges are drawn by kind:
//!
//! | kind | drawn | served by `/graph` |
//! |---|---|---|
//! | tested (an upgrade run passed) | solid green, arrow | as an edge |
//! | conditional (tested, then blocked by hand) | dashed orange, arrow, the risk in its tooltip | as a conditional edge with its risk |
//! | failed (runs, none passed) | dotted grey, arrow | no |

use std::collections::BTreeMap;
use std::fmt::Write;

use crate::{Graph, Pair};

/// Node width.
const NODE_W: u32 = 180;
/// Node height.
const NODE_H: u32 = 26;
/// Between columns: room for the curves of edges within a column.
const COL_GAP: u32 = 110;
/// Between rows.
const ROW_GAP: u32 = 14;
/// Around everything.
const MARGIN: u32 = 20;
/// The column headings.
const HEADING: u32 = 24;
/// The legend below the columns.
const LEGEND: u32 = 40;

/// How an edge is drawn: class, colour, dash pattern, what it means.
const KINDS: [(&str, &str, &str, &str); 3] = [
    ("tested", "#2e7d32", "", "tested upgrade"),
    (
        "conditional",
        "#e65100",
        "6 4",
        "blocked: conditional, with a risk",
    ),
    ("failed", "#9e9e9e", "2 3", "failed upgrade, not served"),
];

/// Escapes text for SVG content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

/// The column (by `major.minor`, ascending) and row of each node.
fn layout(graph: &Graph) -> (Vec<String>, Vec<(usize, usize)>) {
    let minor = |v: &str| match semver::Version::parse(v) {
        Ok(v) => (v.major, v.minor),
        Err(_) => (u64::MAX, u64::MAX),
    };
    let columns: BTreeMap<(u64, u64), usize> =
        graph.nodes.iter().map(|n| (minor(&n.version), 0)).collect();
    let index: BTreeMap<(u64, u64), usize> =
        columns.keys().enumerate().map(|(i, k)| (*k, i)).collect();
    let mut rows = vec![0; index.len()];
    let mut places = Vec::with_capacity(graph.nodes.len());
    for n in &graph.nodes {
        let col = index[&minor(&n.version)];
        places.push((col, rows[col]));
        rows[col] += 1;
    }
    let names = columns
        .keys()
        .map(|(major, minor)| match major {
            &u64::MAX => "?".to_string(),
            _ => format!("{major}.{minor}"),
        })
        .collect();
    (names, places)
}

fn x(col: usize) -> u32 {
    MARGIN + col as u32 * (NODE_W + COL_GAP)
}

fn y(row: usize) -> u32 {
    MARGIN + HEADING + row as u32 * (NODE_H + ROW_GAP)
}

/// The path of an edge between the nodes placed at `a` and `b`.
fn path(a: (usize, usize), b: (usize, usize)) -> String {
    // Edges into one node from different rows end a little apart, so that their arrows show.
    let spread = (a.1 as i64 - b.1 as i64).clamp(-2, 2) * 4;
    let ay = y(a.1) + NODE_H / 2;
    let by = (y(b.1) as i64 + (NODE_H / 2) as i64 + spread) as u32;
    if a.0 == b.0 {
        let right = x(a.0) + NODE_W;
        let rows = a.1.abs_diff(b.1) as u32;
        let bow = (16 + 14 * rows).min(COL_GAP - 12);
        format!(
            "M{right},{ay} C{c},{ay} {c},{by} {right},{by}",
            c = right + bow
        )
    } else {
        let (sx, ex) = if a.0 < b.0 {
            (x(a.0) + NODE_W, x(b.0))
        } else {
            (x(a.0), x(b.0) + NODE_W)
        };
        let pull = if a.0 < b.0 { 40i64 } else { -40 };
        format!(
            "M{sx},{ay} C{c1},{ay} {c2},{by} {ex},{by}",
            c1 = sx as i64 + pull,
            c2 = ex as i64 - pull
        )
    }
}

/// The SVG of `graph`, with the `failed` upgrades among its nodes drawn too; element ids start
/// with `id`.
pub fn svg(graph: &Graph, failed: &[Pair], id: &str) -> String {
    let id = escape(id);
    let (columns, places) = layout(graph);
    let rows = places.iter().map(|p| p.1 + 1).max().unwrap_or(0);
    let width =
        (2 * MARGIN + columns.len().max(1) as u32 * (NODE_W + COL_GAP)).max(2 * MARGIN + 3 * 250);
    let height = y(rows) + LEGEND;
    let mut s = String::new();
    let _ = write!(
        s,
        r#"<svg xmlns="http://www.w3.org/2000/svg" class="graph" id="{id}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" font-family="sans-serif" font-size="12">"#
    );
    let _ = write!(
        s,
        "<title>{} releases, {} edges, {} conditional, {} failed</title><defs>",
        graph.nodes.len(),
        graph.edges.len(),
        graph
            .conditional_edges
            .iter()
            .map(|c| c.edges.len())
            .sum::<usize>(),
        failed.len()
    );
    for (class, colour, _, _) in KINDS {
        let _ = write!(
            s,
            r#"<marker id="{id}-{class}" viewBox="0 0 10 10" refX="10" refY="5" markerWidth="7" markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>"#
        );
    }
    s.push_str("</defs>");
    for (i, name) in columns.iter().enumerate() {
        let _ = write!(
            s,
            r#"<text x="{}" y="{}" font-weight="bold">{}</text>"#,
            x(i),
            MARGIN + 12,
            escape(name)
        );
    }
    let at: BTreeMap<&str, (usize, usize)> = graph
        .nodes
        .iter()
        .zip(&places)
        .map(|(n, p)| (n.version.as_str(), *p))
        .collect();
    let mut edge = |from: &str, to: &str, kind: usize, why: &str| {
        let (Some(&a), Some(&b)) = (at.get(from), at.get(to)) else {
            return;
        };
        let (class, colour, dash, _) = KINDS[kind];
        let dash = if dash.is_empty() {
            String::new()
        } else {
            format!(r#" stroke-dasharray="{dash}""#)
        };
        let _ = write!(
            s,
            r#"<path class="edge {class}" d="{}" fill="none" stroke="{colour}" stroke-width="1.5"{dash} marker-end="url(#{id}-{class})"><title>{} → {}: {}</title></path>"#,
            path(a, b),
            escape(from),
            escape(to),
            escape(why)
        );
    };
    for [f, t] in &graph.edges {
        let (from, to) = (&graph.nodes[*f].version, &graph.nodes[*t].version);
        edge(from, to, 0, "tested");
    }
    for c in &graph.conditional_edges {
        let risks: Vec<String> = c
            .risks
            .iter()
            .map(|r| format!("{}: {}", r.name, r.message))
            .collect();
        for p in &c.edges {
            edge(
                &p.from,
                &p.to,
                1,
                &format!("conditional ({})", risks.join("; ")),
            );
        }
    }
    for p in failed {
        edge(&p.from, &p.to, 2, "no upgrade run passed; not served");
    }
    for (n, (col, row)) in graph.nodes.iter().zip(&places) {
        let _ = write!(
            s,
            r##"<g class="node"><title>{v}&#10;{payload}</title><rect x="{x}" y="{y}" width="{NODE_W}" height="{NODE_H}" rx="4" fill="#eef3fb" stroke="#3b5b8c"/><text x="{tx}" y="{ty}">{v}</text></g>"##,
            v = escape(&n.version),
            payload = escape(&n.payload),
            x = x(*col),
            y = y(*row),
            tx = x(*col) + 8,
            ty = y(*row) + NODE_H / 2 + 4,
        );
    }
    if graph.nodes.is_empty() {
        let _ = write!(
            s,
            r#"<text x="{MARGIN}" y="{}">No releases in this channel.</text>"#,
            MARGIN + HEADING
        );
    }
    let legend = y(rows) + 16;
    for (i, (class, colour, dash, meaning)) in KINDS.iter().enumerate() {
        let lx = MARGIN + i as u32 * 250;
        let _ = write!(
            s,
            r#"<line class="legend {class}" x1="{lx}" y1="{legend}" x2="{}" y2="{legend}" stroke="{colour}" stroke-width="1.5" stroke-dasharray="{dash}"/><text x="{}" y="{}">{meaning}</text>"#,
            lx + 30,
            lx + 36,
            legend + 4
        );
    }
    s.push_str("</svg>");
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ConditionalEdge, Node, Risk, Rule};

    fn node(v: &str) -> Node {
        Node {
            version: v.into(),
            payload: format!("quay.io/okd/scos-release@sha256:{v}"),
            metadata: Default::default(),
        }
    }

    #[test]
    fn columns_per_minor_and_edges_by_kind() {
        let graph = Graph {
            version: 1,
            nodes: [
                "4.17.0-okd-scos.0",
                "4.17.0-okd-scos.1",
                "4.18.0-okd-scos.0",
            ]
            .map(node)
            .to_vec(),
            edges: vec![[0, 1]],
            conditional_edges: vec![ConditionalEdge {
                edges: vec![Pair {
                    from: "4.17.0-okd-scos.1".into(),
                    to: "4.18.0-okd-scos.0".into(),
                }],
                risks: vec![Risk {
                    url: "https://issues.example/1".into(),
                    name: "EtcdFails".into(),
                    message: "etcd <fails> & \"stops\"".into(),
                    matching_rules: vec![Rule {
                        kind: "Always".into(),
                    }],
                }],
            }],
        };
        let failed = [Pair {
            from: "4.17.0-okd-scos.0".into(),
            to: "4.18.0-okd-scos.0".into(),
        }];
        let (columns, places) = layout(&graph);
        assert_eq!(columns, ["4.17", "4.18"]);
        assert_eq!(places, [(0, 0), (0, 1), (1, 0)]);
        let svg = svg(&graph, &failed, "stable-4");
        assert!(svg.starts_with("<svg xmlns=\"http://www.w3.org/2000/svg\""));
        assert_eq!(svg.matches("class=\"node\"").count(), 3);
        assert_eq!(svg.matches("class=\"edge tested\"").count(), 1);
        assert_eq!(svg.matches("class=\"edge conditional\"").count(), 1);
        assert_eq!(svg.matches("class=\"edge failed\"").count(), 1);
        assert!(svg.contains("EtcdFails: etcd &lt;fails&gt; &amp; &quot;stops&quot;"));
        assert!(svg.contains("marker-end=\"url(#stable-4-conditional)\""));
        assert!(!svg.contains("<script") && !svg.contains("href"));
    }

    #[test]
    fn an_empty_channel_says_so() {
        let svg = svg(&Graph::empty(), &[], "x");
        assert!(svg.contains("No releases in this channel."));
    }
}
