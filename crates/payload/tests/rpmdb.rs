//! The packages of OS images: rpm databases made by the real rpm, read by okd-forge and compared
//! with what `rpm -qa` reads of the same file.

use std::sync::Arc;

use oci::{Layout, RegistryOptions, Stores};
use payload::rpmdb::{self, Package};
use payload::source::Sources;
use testkit::release::{Entry, ImageBuilder};

const V1: &[(&str, &str, &str)] = &[
    ("kernel", "5.9.11", "200.fc33"),
    ("NetworkManager", "1.26.4", "1.fc33"),
    ("zincati", "0.0.14", "1.fc33"),
];

#[test]
fn a_database_reads_as_rpm_reads_it() {
    let db = testkit::rpm::database(V1);
    let tmp = tempfile::tempdir().unwrap();
    let path = tmp.path().join("rpmdb.sqlite");
    std::fs::write(&path, &db).unwrap();
    let ours = rpmdb::read_sqlite(&path, "rpmdb.sqlite").unwrap();
    let mut printed: Vec<String> = ours.iter().map(Package::to_string).collect();
    printed.sort();
    assert_eq!(printed, testkit::rpm::query_all(&db));
    assert_eq!(
        printed,
        [
            "NetworkManager-1.26.4-1.fc33.noarch",
            "kernel-5.9.11-200.fc33.noarch",
            "zincati-0.0.14-1.fc33.noarch"
        ]
    );

    // Not a database: an error naming the file.
    std::fs::write(&path, b"not sqlite").unwrap();
    let e = rpmdb::read_sqlite(&path, "OS image x: /usr/share/rpm/rpmdb.sqlite").unwrap_err();
    assert!(
        e.starts_with("OS image x: /usr/share/rpm/rpmdb.sqlite: "),
        "{e}"
    );
}

/// An image whose only layer has V1's database in /usr/share/rpm.
fn base_with_db() -> ImageBuilder {
    ImageBuilder::new("amd64").layer(rpmdb_layer("usr/share/rpm", testkit::rpm::database(V1)))
}

fn rpmdb_layer(dir: &str, db: Vec<u8>) -> Vec<Entry> {
    let mut entries = Vec::new();
    let mut at = String::new();
    for part in dir.split('/') {
        at.push_str(part);
        at.push('/');
        entries.push(Entry::dir(&at));
    }
    entries.push(Entry::file(&format!("{dir}/rpmdb.sqlite"), db));
    entries
}

#[tokio::test]
async fn an_image_gives_the_packages_of_its_top_most_database_and_none_once_whited_out() {
    let tmp = tempfile::tempdir().unwrap();
    let layout = Layout::create(tmp.path().join("store")).unwrap();
    let v2 = testkit::rpm::database(&[
        ("kernel", "5.9.13", "200.fc33"),
        ("NetworkManager", "1.26.4", "1.fc33"),
        ("cri-o", "1.19.0", "1.fc33"),
    ]);
    // The base's database in /usr/share/rpm, replaced by a later layer; the top layer has none.
    let base = ImageBuilder::new("amd64")
        .layer(rpmdb_layer("usr/share/rpm", testkit::rpm::database(V1)))
        .layer(rpmdb_layer("usr/share/rpm", v2))
        .layer(vec![Entry::dir("etc/"), Entry::file("etc/motd", "okd\n")]);
    base.write(&layout, Some("os"));
    let gone = base.clone().layer(vec![
        Entry::dir("usr/"),
        Entry::dir("usr/share/"),
        Entry::file("usr/share/.wh.rpm", ""),
    ]);
    gone.write(&layout, Some("gone"));
    let opaque = base.layer(vec![
        Entry::dir("usr/"),
        Entry::dir("usr/share/"),
        Entry::dir("usr/share/rpm/"),
        Entry::file("usr/share/rpm/.wh..wh..opq", ""),
    ]);
    opaque.write(&layout, Some("opaque"));

    let sources = Sources::new(
        Arc::new(Stores::new(RegistryOptions::default())),
        Some(layout.clone()),
        None,
    )
    .unwrap();
    let store = tmp.path().join("store");
    let at = |tag: &str| format!("oci:{}:{tag}", store.display());
    let packages = rpmdb::packages_of(&sources, "OS image", &at("os"), None)
        .await
        .unwrap()
        .expect("a database");
    let names: Vec<String> = packages.iter().map(Package::to_string).collect();
    assert_eq!(
        names,
        [
            "NetworkManager-1.26.4-1.fc33.noarch",
            "cri-o-1.19.0-1.fc33.noarch",
            "kernel-5.9.13-200.fc33.noarch"
        ]
    );
    // An ostree-style layer: the database is a hard link into the object store, and the classic
    // location a symbolic link; the link is read as its target.
    let v1 = testkit::rpm::database(V1);
    let ostree = ImageBuilder::new("amd64").layer(vec![
        Entry::dir("sysroot/"),
        Entry::dir("sysroot/ostree/"),
        Entry::file("sysroot/ostree/ab.file", v1),
        Entry::dir("usr/"),
        Entry::dir("usr/share/"),
        Entry::dir("usr/share/rpm/"),
        Entry::hardlink("usr/share/rpm/rpmdb.sqlite", "sysroot/ostree/ab.file"),
        Entry::dir("var/"),
        Entry::dir("var/lib/"),
        Entry::symlink("var/lib/rpm", "../../usr/share/rpm"),
    ]);
    ostree.write(&layout, Some("ostree"));
    let linked = rpmdb::packages_of(&sources, "OS image", &at("ostree"), None)
        .await
        .unwrap()
        .expect("the hard link's target");
    assert_eq!(linked.len(), 3);
    assert!(linked
        .iter()
        .any(|p| p.to_string() == "zincati-0.0.14-1.fc33.noarch"));
    // A directory replaced by a link in a later layer hides the database below it.
    let replaced = base_with_db().layer(vec![
        Entry::dir("usr/"),
        Entry::dir("usr/share/"),
        Entry::symlink("usr/share/rpm", "/elsewhere"),
    ]);
    replaced.write(&layout, Some("replaced"));
    for hidden in ["gone", "opaque", "replaced"] {
        assert_eq!(
            rpmdb::packages_of(&sources, "OS image", &at(hidden), None)
                .await
                .unwrap(),
            None,
            "{hidden}"
        );
    }
}
