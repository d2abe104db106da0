//! JUnit XML results: the test cases a job leaves in its `ARTIFACT_DIR`.
//!
//! ci-operator's convention is `junit_*.xml` anywhere under the artifacts; okd-forge reads every
//! `*.xml` file below the directory and keeps those whose root element is `<testsuites>` or
//! `<testsuite>`. Other XML (a cluster dump, a must-gather) is skipped silently. A JUnit file that
//! breaks off or is not well-formed is reported as an [`JunitError`]; the test cases read from it
//! before the error are kept.
//!
//! Within a file: each `<testcase>` belongs to the innermost enclosing `<testsuite>` (by its `name`,
//! empty when it has none); a `<failure>` or `<error>` child makes it failed, a `<skipped>` child
//! skipped, otherwise it passed. A message is the element's `message` attribute and its text, each
//! when not empty, joined by a newline (openshift-tests writes the output as text, surefire the
//! summary as the attribute). Surefire's `<flakyFailure>`/`<rerunFailure>` (a rerun that passed)
//! and `<system-out>`/`<system-err>` are ignored.
//!
//! ```
//! use release::jobs::junit::{parse_str, TestResult};
//!
//! let xml = r#"<testsuite name="openshift-tests">
//!   <testcase name="[sig-network] pods talk" classname="e2e" time="1.5"/>
//!   <testcase name="[sig-storage] volumes"><failure message="timed out">stack</failure></testcase>
//! </testsuite>"#;
//! let cases = parse_str(xml).unwrap().unwrap();
//! assert_eq!(cases[0].result, TestResult::Passed);
//! assert_eq!(cases[0].duration, Some(1.5));
//! assert_eq!(cases[1].result, TestResult::Failed { message: "timed out\nstack".into() });
//! ```

use std::io::BufRead;
use std::path::{Path, PathBuf};

use quick_xml::events::{BytesRef, BytesStart, Event};
use quick_xml::Reader;

/// One test case of a JUnit file.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct TestCase {
    /// The enclosing `<testsuite name=…>`; empty when there is none or it has no name.
    pub suite: String,
    /// `<testcase name=…>`.
    pub name: String,
    /// `<testcase classname=…>`.
    pub classname: Option<String>,
    /// `<testcase time=…>` in seconds, when present and a number.
    pub duration: Option<f64>,
    /// How it ended.
    pub result: TestResult,
}

/// How a test case ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum TestResult {
    /// No `<failure>`, `<error>` or `<skipped>`.
    Passed,
    /// A `<failure>` or `<error>`.
    Failed {
        /// Its message attribute and text.
        message: String,
    },
    /// A `<skipped>`.
    Skipped {
        /// Its message attribute and text.
        message: String,
    },
}

/// A JUnit file that could not be read completely.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("JUnit file {}: {message}", path.display())]
pub struct JunitError {
    /// The file.
    pub path: PathBuf,
    /// What went wrong (with the byte offset for XML errors).
    pub message: String,
}

/// What [`parse_dir`] found: the test cases of every JUnit file, in file-path order, and the files
/// it could not read (their test cases up to the error are in `tests`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Results {
    /// All test cases.
    pub tests: Vec<TestCase>,
    /// The files that could not be read.
    pub errors: Vec<JunitError>,
}

/// Read every JUnit `*.xml` file below `dir` (recursively, in sorted path order, not following
/// symbolic links). A missing directory gives no results.
pub fn parse_dir(dir: &Path) -> Results {
    let mut results = Results::default();
    let mut files = Vec::new();
    collect_xml(dir, &mut files, &mut results.errors);
    files.sort();
    for path in files {
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) => {
                results.errors.push(JunitError {
                    path,
                    message: format!("cannot open: {e}"),
                });
                continue;
            }
        };
        let mut tests = Vec::new();
        let outcome = parse_reader(std::io::BufReader::new(file), &mut tests);
        results.tests.append(&mut tests);
        if let Err(message) = outcome {
            results.errors.push(JunitError { path, message });
        }
    }
    results
}

fn collect_xml(dir: &Path, files: &mut Vec<PathBuf>, errors: &mut Vec<JunitError>) {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return,
        Err(e) => {
            errors.push(JunitError {
                path: dir.to_path_buf(),
                message: format!("cannot list the directory: {e}"),
            });
            return;
        }
    };
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            collect_xml(&path, files, errors);
        } else if kind.is_file()
            && path
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("xml"))
        {
            files.push(path);
        }
    }
}

/// Parse one document. `Ok(None)`: not JUnit (another root element, or not XML before the root).
/// `Err`: a JUnit document that is not well-formed or breaks off.
pub fn parse_str(xml: &str) -> Result<Option<Vec<TestCase>>, String> {
    let mut tests = Vec::new();
    parse_reader(xml.as_bytes(), &mut tests).map(|junit| junit.then_some(tests))
}

/// The element a message is being collected for.
struct Pending {
    kind: Kind,
    message: String,
    text: String,
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Failed,
    Skipped,
}

/// The test case being read.
struct Case {
    suite: String,
    name: String,
    classname: Option<String>,
    duration: Option<f64>,
    failed: Option<String>,
    skipped: Option<String>,
}

impl Case {
    fn finish(self) -> TestCase {
        let result = match (self.failed, self.skipped) {
            (Some(message), _) => TestResult::Failed { message },
            (None, Some(message)) => TestResult::Skipped { message },
            (None, None) => TestResult::Passed,
        };
        TestCase {
            suite: self.suite,
            name: self.name,
            classname: self.classname,
            duration: self.duration,
            result,
        }
    }
}

/// Parse from `input` into `tests`: `Ok(false)` when the document is not JUnit.
fn parse_reader<R: BufRead>(input: R, tests: &mut Vec<TestCase>) -> Result<bool, String> {
    let mut reader = Reader::from_reader(input);
    reader.config_mut().check_end_names = true;
    let mut buf = Vec::new();
    let mut root_seen = false;
    // How many elements are open; the depth and name of each open <testsuite>; the test case and
    // the <failure>/<error>/<skipped> being read, with their depths.
    let mut depth = 0usize;
    let mut suites: Vec<(usize, String)> = Vec::new();
    let mut case: Option<(usize, Case)> = None;
    let mut pending: Option<(usize, Pending)> = None;
    loop {
        let event = match reader.read_event_into(&mut buf) {
            Ok(e) => e,
            // Not XML before any element: not a JUnit file.
            Err(_) if !root_seen => return Ok(false),
            Err(e) => {
                return Err(format!(
                    "not well-formed XML at byte {}: {e}",
                    reader.error_position()
                ))
            }
        };
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let empty = matches!(event, Event::Empty(_));
                let name = e.local_name();
                let name = name.as_ref();
                if !root_seen {
                    root_seen = true;
                    if name != "testsuites" && name != "testsuite" {
                        return Ok(false);
                    }
                }
                depth += 1;
                match name {
                    "testsuite" if !empty => {
                        suites.push((depth, attr(e, "name")?.unwrap_or_default()));
                    }
                    "testcase" if case.is_none() => {
                        let suite = suites.last().map(|(_, s)| s.clone()).unwrap_or_default();
                        let c = Case {
                            suite,
                            name: attr(e, "name")?.unwrap_or_default(),
                            classname: attr(e, "classname")?,
                            duration: attr(e, "time")?.and_then(|t| t.trim().parse().ok()),
                            failed: None,
                            skipped: None,
                        };
                        if empty {
                            tests.push(c.finish());
                        } else {
                            case = Some((depth, c));
                        }
                    }
                    "failure" | "error" | "skipped" if case.is_some() && pending.is_none() => {
                        let kind = if name == "skipped" {
                            Kind::Skipped
                        } else {
                            Kind::Failed
                        };
                        let p = Pending {
                            kind,
                            message: attr(e, "message")?.unwrap_or_default(),
                            text: String::new(),
                        };
                        if empty {
                            record(&mut case, p);
                        } else {
                            pending = Some((depth, p));
                        }
                    }
                    _ => {}
                }
                if empty {
                    depth -= 1;
                }
            }
            Event::End(_) => {
                if pending.as_ref().is_some_and(|(d, _)| *d == depth) {
                    if let Some((_, p)) = pending.take() {
                        record(&mut case, p);
                    }
                }
                if case.as_ref().is_some_and(|(d, _)| *d == depth) {
                    if let Some((_, c)) = case.take() {
                        tests.push(c.finish());
                    }
                }
                if suites.last().is_some_and(|(d, _)| *d == depth) {
                    suites.pop();
                }
                depth = depth.saturating_sub(1);
            }
            Event::Text(t) => {
                if let Some((_, p)) = pending.as_mut() {
                    p.text.push_str(&t.xml10_content());
                }
            }
            Event::CData(t) => {
                if let Some((_, p)) = pending.as_mut() {
                    p.text.push_str(&t.xml10_content());
                }
            }
            Event::GeneralRef(r) => {
                if let Some((_, p)) = pending.as_mut() {
                    p.text.push_str(&resolve(&r)?);
                }
            }
            Event::Eof => {
                if !root_seen {
                    return Ok(false);
                }
                if depth > 0 {
                    return Err("the document ends inside an element (a truncated file?)".into());
                }
                return Ok(true);
            }
            _ => {}
        }
        buf.clear();
    }
}

/// Put a finished `<failure>`/`<error>`/`<skipped>` on the open test case (the first failure wins).
fn record(case: &mut Option<(usize, Case)>, p: Pending) {
    let Some((_, c)) = case.as_mut() else {
        return;
    };
    let message = [p.message.trim(), p.text.trim()]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("\n");
    let slot = match p.kind {
        Kind::Failed => &mut c.failed,
        Kind::Skipped => &mut c.skipped,
    };
    if slot.is_none() {
        *slot = Some(message);
    }
}

/// An attribute's value with entities resolved.
fn attr(e: &BytesStart<'_>, key: &str) -> Result<Option<String>, String> {
    match e.try_get_attribute(key) {
        Ok(Some(a)) => a
            .normalized_value(quick_xml::XmlVersion::Implicit1_0)
            .map(|v| Some(v.into_owned()))
            .map_err(|err| format!("attribute {} of <{}>: {err}", key, e.local_name().as_ref())),
        Ok(None) => Ok(None),
        Err(err) => Err(format!(
            "attributes of <{}>: {err}",
            e.local_name().as_ref()
        )),
    }
}

/// The text of `&name;` or `&#n;`: the five predefined entities and character references.
fn resolve(r: &BytesRef<'_>) -> Result<String, String> {
    if let Some(c) = r.resolve_char_ref().map_err(|e| e.to_string())? {
        return Ok(c.to_string());
    }
    let name: &str = r;
    quick_xml::escape::resolve_predefined_entity(name)
        .map(str::to_string)
        .ok_or_else(|| format!("unknown entity &{name};"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(xml: &str) -> Vec<TestCase> {
        parse_str(xml).expect("well-formed").expect("JUnit")
    }

    #[test]
    fn testsuites_with_nested_suites_and_all_results() {
        let xml = r#"<?xml version="1.0" encoding="UTF-8"?>
<testsuites name="all">
  <testsuite name="outer" tests="4">
    <testcase name="passes" classname="a.B" time="0.25"/>
    <testcase name="fails" time="bogus">
      <failure message="expected 1 &amp; got 2" type="assert">line 1&#10;line &lt;2&gt;</failure>
      <system-out>noise</system-out>
    </testcase>
    <testsuite name="inner">
      <testcase name="errors"><error message="boom"/></testcase>
      <testcase name="skips"><skipped message="not on this platform"/></testcase>
      <testcase name="cdata"><failure><![CDATA[<raw> & text]]></failure></testcase>
    </testsuite>
    <testcase name="after inner"><skipped/></testcase>
  </testsuite>
</testsuites>"#;
        let t = parse(xml);
        let summary: Vec<(&str, &str, &TestResult)> = t
            .iter()
            .map(|c| (c.suite.as_str(), c.name.as_str(), &c.result))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("outer", "passes", &TestResult::Passed),
                (
                    "outer",
                    "fails",
                    &TestResult::Failed {
                        message: "expected 1 & got 2\nline 1\nline <2>".into()
                    }
                ),
                (
                    "inner",
                    "errors",
                    &TestResult::Failed {
                        message: "boom".into()
                    }
                ),
                (
                    "inner",
                    "skips",
                    &TestResult::Skipped {
                        message: "not on this platform".into()
                    }
                ),
                (
                    "inner",
                    "cdata",
                    &TestResult::Failed {
                        message: "<raw> & text".into()
                    }
                ),
                (
                    "outer",
                    "after inner",
                    &TestResult::Skipped {
                        message: String::new()
                    }
                ),
            ]
        );
        assert_eq!(t[0].classname.as_deref(), Some("a.B"));
        assert_eq!(t[0].duration, Some(0.25));
        assert_eq!(t[1].duration, None);
        assert_eq!(t[1].classname, None);
    }

    #[test]
    fn failure_wins_over_skipped_and_flaky_reruns_are_ignored() {
        let t = parse(
            r#"<testsuite name="s">
  <testcase name="x"><skipped/><failure message="f"/></testcase>
  <testcase name="y"><flakyFailure message="first try"/></testcase>
</testsuite>"#,
        );
        assert_eq!(
            t[0].result,
            TestResult::Failed {
                message: "f".into()
            }
        );
        assert_eq!(t[1].result, TestResult::Passed);
    }

    #[test]
    fn bare_testsuite_and_empty_documents() {
        assert_eq!(parse(r#"<testsuite name="s"/>"#), vec![]);
        assert_eq!(parse("<testsuites></testsuites>"), vec![]);
        assert_eq!(parse("<testsuites><testsuite/></testsuites>"), vec![]);
    }

    #[test]
    fn other_xml_is_not_junit() {
        assert_eq!(
            parse_str("<project><testcase name='x'/></project>"),
            Ok(None)
        );
        assert_eq!(parse_str(""), Ok(None));
        assert_eq!(parse_str("plain text, not XML"), Ok(None));
        assert_eq!(
            parse_str("<?xml version='1.0'?><!-- c --><html/>"),
            Ok(None)
        );
    }

    #[test]
    fn broken_junit_is_an_error() {
        let e = parse_str(r#"<testsuite name="s"><testcase name="a"/><testcase name="b">"#)
            .unwrap_err();
        assert!(e.contains("truncated"), "{e}");
        let e = parse_str(r#"<testsuite><testcase name="a"></testsuite>"#).unwrap_err();
        assert!(e.contains("not well-formed"), "{e}");
        let e = parse_str(
            r#"<testsuite><testcase name="a"><failure>&bogus;</failure></testcase></testsuite>"#,
        )
        .unwrap_err();
        assert!(e.contains("bogus"), "{e}");
    }

    #[test]
    fn parse_dir_reads_junit_files_recursively_and_reports_broken_ones() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir_all(d.join("nested/deeper")).unwrap();
        std::fs::write(
            d.join("junit_e2e.xml"),
            r#"<testsuite name="e2e"><testcase name="a"/></testsuite>"#,
        )
        .unwrap();
        std::fs::write(
            d.join("nested/deeper/results.XML"),
            r#"<testsuites><testsuite name="deep"><testcase name="b"/></testsuite></testsuites>"#,
        )
        .unwrap();
        std::fs::write(d.join("nested/pom.xml"), "<project/>").unwrap();
        std::fs::write(d.join("nested/notes.txt"), "<testsuite/>").unwrap();
        std::fs::write(
            d.join("nested/junit_broken.xml"),
            r#"<testsuite name="broken"><testcase name="c"/><testcase name="d">"#,
        )
        .unwrap();
        let r = parse_dir(d);
        let names: Vec<&str> = r.tests.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["a", "b", "c"]);
        assert_eq!(r.errors.len(), 1, "{:?}", r.errors);
        assert_eq!(r.errors[0].path, d.join("nested/junit_broken.xml"));
        assert!(r.errors[0].to_string().contains("junit_broken.xml"));
        assert_eq!(parse_dir(&d.join("missing")), Results::default());
    }
}
