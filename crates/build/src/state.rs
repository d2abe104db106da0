//! The state database: builds, the input-hash build cache, and promotion of digests into streams.
//!
//! One SQLite file (`state:` in `forge.yaml`, `var/forge.db` by default) in WAL mode, so that a
//! long-running `okd-forge watch` or `serve` and a one-off `okd-forge build` can share it. Every
//! change is one transaction: a crash leaves either the whole change or none of it, and running the
//! same step again converges ([`State::promote`] is idempotent, [`State::fail_interrupted`] cleans
//! up builds that a crashed okd-forge left running).
//!
//! This module is the one place that talks to the database. The schema is the ordered list
//! [`MIGRATIONS`]; see there how to extend it.
//!
//! ```
//! use build::state::{NewBuild, Outcome, State};
//!
//! let state = State::open_in_memory()?;
//! let build = NewBuild {
//!     stream: "okd-scos-4.17".into(),
//!     component: "installer".into(),
//!     tag: "installer".into(),
//!     git_url: "https://github.com/openshift/installer".into(),
//!     revision: "branch release-4.17".into(),
//!     commit: "0123456789abcdef0123456789abcdef01234567".into(),
//!     input_hash: "sha256:1111".into(),
//!     builder: "buildah".into(),
//!     log_path: None,
//!     promote: true,
//! };
//! let id = state.start_build(&build)?;
//! state.finish_build(id, &Outcome::Succeeded { digest: "sha256:aaaa".into() })?;
//! assert_eq!(state.cached("sha256:1111")?.as_deref(), Some("sha256:aaaa"));
//!
//! assert!(state.promote("okd-scos-4.17", "installer", "sha256:aaaa", Some(id))?);
//! assert!(!state.promote("okd-scos-4.17", "installer", "sha256:aaaa", Some(id))?); // unchanged
//! assert_eq!(state.stream_tags("okd-scos-4.17")?[0].digest, "sha256:aaaa");
//! # Ok::<(), build::state::StateError>(())
//! ```
//!
//! Timestamps (`started`, `finished`, `updated`, `at`) are RFC 3339 UTC text with second
//! precision (`2026-11-23T10:15:00Z`), taken from the system clock. The only exception is
//! [`State::set_last_forced`], which stores the unix seconds its caller passes. Ordering ("newest
//! first") follows row ids, never timestamps, so a clock step cannot reorder history.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use rusqlite::types::{FromSql, FromSqlError, FromSqlResult, ToSql, ToSqlOutput, ValueRef};
use rusqlite::{params, Connection, ErrorCode, OptionalExtension, Row, TransactionBehavior};
use rusqlite_migration::{Migrations, M};

/// The rusqlite this module uses, for stages that keep their own tables in the state database
/// (see [`State::transaction`]).
pub use rusqlite;

/// How long a statement waits for another okd-forge's write transaction before failing with
/// [`StateError::Locked`].
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// The error [`State::fail_interrupted`] records on builds a crashed okd-forge left running.
pub const INTERRUPTED: &str = "interrupted";

/// The schema of the state database, as the ordered list of migrations that build it.
///
/// The database's `PRAGMA user_version` is the number of entries already applied; opening a
/// database applies the rest, all in one transaction. Because there is a single version counter,
/// this is the one list for the whole database, including the tables of later stages (the release
/// controller): **append** a new `M::up(...)` at the end for every schema change, and never edit,
/// reorder or remove an entry that has been released — a database migrated by it would not be
/// migrated again. Prefix a stage's tables with its name (`release_...`). A database whose
/// version is above the length of this list was written by a newer okd-forge and is refused
/// ([`StateError::TooNew`]) rather than downgraded.
///
/// Version 1, the build stage:
/// - `builds`: one row per build, `status` one of `running`, `succeeded`, `cached`, `failed`;
/// - `build_cache`: input hash → the digest last built for it;
/// - `stream_tags`: the current digest of each (stream, tag), and `tag_history`, one row per change;
/// - `stream_schedule`: per stream, the unix time of the last forced (cron) rebuild.
///
/// Version 2, the release controller (`release::state`; times are unix seconds of the
/// controller's clock, which tests inject):
/// - `release_payloads`: one row per payload, its phase, the stream content it snapshots
///   (`inputs`: JSON tag → digest, and their `hash`), where it was pushed, why it was rejected or
///   failed, and a manual override;
/// - `release_runs`: one row per attempt of a verification job or built-in check;
/// - `release_events`: the event log, one row per transition, kept after payloads are removed.
pub const MIGRATIONS: &[M<'static>] = &[
    M::up(
        "CREATE TABLE builds (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        stream      TEXT NOT NULL,
        component   TEXT NOT NULL,
        tag         TEXT NOT NULL,
        git_url     TEXT NOT NULL,
        revision    TEXT NOT NULL,
        git_commit  TEXT NOT NULL,
        input_hash  TEXT NOT NULL,
        builder     TEXT NOT NULL,
        log_path    TEXT,
        promote     INTEGER NOT NULL CHECK (promote IN (0, 1)),
        status      TEXT NOT NULL CHECK (status IN ('running', 'succeeded', 'cached', 'failed')),
        digest      TEXT,
        error       TEXT,
        started     TEXT NOT NULL,
        finished    TEXT,
        CHECK ((status = 'running') = (finished IS NULL)),
        CHECK ((status IN ('succeeded', 'cached')) = (digest IS NOT NULL)),
        CHECK ((status = 'failed') = (error IS NOT NULL))
    ) STRICT;
    CREATE INDEX builds_by_stream ON builds (stream, id);
    CREATE INDEX builds_running ON builds (status) WHERE status = 'running';

    CREATE TABLE build_cache (
        input_hash  TEXT PRIMARY KEY,
        digest      TEXT NOT NULL,
        build_id    INTEGER REFERENCES builds (id) ON DELETE SET NULL,
        created     TEXT NOT NULL
    ) STRICT;

    CREATE TABLE stream_tags (
        stream      TEXT NOT NULL,
        tag         TEXT NOT NULL,
        digest      TEXT NOT NULL,
        build_id    INTEGER REFERENCES builds (id) ON DELETE SET NULL,
        updated     TEXT NOT NULL,
        PRIMARY KEY (stream, tag)
    ) STRICT;

    CREATE TABLE tag_history (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        stream      TEXT NOT NULL,
        tag         TEXT NOT NULL,
        digest      TEXT NOT NULL,
        previous    TEXT,
        build_id    INTEGER REFERENCES builds (id) ON DELETE SET NULL,
        at          TEXT NOT NULL
    ) STRICT;
    CREATE INDEX tag_history_by_tag ON tag_history (stream, tag, id);

    CREATE TABLE stream_schedule (
        stream      TEXT PRIMARY KEY,
        last_forced INTEGER NOT NULL
    ) STRICT;",
    ),
    M::up(
        "CREATE TABLE release_payloads (
        name        TEXT PRIMARY KEY,
        stream      TEXT NOT NULL,
        phase       TEXT NOT NULL
                    CHECK (phase IN ('pending', 'ready', 'accepted', 'rejected', 'failed')),
        created     INTEGER NOT NULL,
        hash        TEXT NOT NULL,
        inputs      TEXT NOT NULL,
        digest      TEXT,
        pull_spec   TEXT,
        reason      TEXT,
        override    TEXT CHECK (override IN ('accepted', 'rejected')),
        keep        INTEGER NOT NULL DEFAULT 0 CHECK (keep IN (0, 1)),
        updated     INTEGER NOT NULL,
        CHECK ((phase IN ('pending', 'failed')) OR digest IS NOT NULL)
    ) STRICT;
    CREATE INDEX release_payloads_by_stream ON release_payloads (stream, created);

    CREATE TABLE release_runs (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        payload     TEXT NOT NULL REFERENCES release_payloads (name) ON DELETE CASCADE,
        job         TEXT NOT NULL,
        kind        TEXT NOT NULL CHECK (kind IN ('job', 'check')),
        attempt     INTEGER NOT NULL,
        state       TEXT NOT NULL CHECK (state IN
                    ('running', 'succeeded', 'skipped', 'failed', 'timed-out', 'error', 'interrupted')),
        initial     TEXT,
        dir         TEXT,
        started     INTEGER NOT NULL,
        finished    INTEGER,
        message     TEXT,
        tests       TEXT,
        CHECK ((state = 'running') = (finished IS NULL)),
        UNIQUE (payload, job, attempt)
    ) STRICT;
    CREATE INDEX release_runs_running ON release_runs (state) WHERE state = 'running';

    CREATE TABLE release_events (
        id          INTEGER PRIMARY KEY AUTOINCREMENT,
        at          INTEGER NOT NULL,
        stream      TEXT NOT NULL,
        payload     TEXT,
        kind        TEXT NOT NULL,
        message     TEXT NOT NULL
    ) STRICT;
    CREATE INDEX release_events_by_payload ON release_events (payload, id);",
    ),
    // Stable releases: Accepted payloads restamped under a stable name, recorded as payloads of
    // their stream (Accepted, kept) with the payload they were promoted from.
    // Upgrade edges: every finished upgrade run from a recorded payload or stable release, kept
    // when garbage collection removes the payloads and runs; and edges blocked by hand.
    M::up(
        "ALTER TABLE release_payloads ADD COLUMN stable_of TEXT;
        ALTER TABLE release_payloads ADD COLUMN channels TEXT;
        CREATE TABLE release_upgrades (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            from_name   TEXT NOT NULL,
            to_name     TEXT NOT NULL,
            job         TEXT NOT NULL,
            run_id      INTEGER NOT NULL UNIQUE,
            succeeded   INTEGER NOT NULL CHECK (succeeded IN (0, 1)),
            dir         TEXT,
            at          INTEGER NOT NULL
        ) STRICT;
        CREATE INDEX release_upgrades_by_to ON release_upgrades (to_name, from_name);
        CREATE TABLE release_edge_blocks (
            from_name   TEXT NOT NULL,
            to_name     TEXT NOT NULL,
            reason      TEXT NOT NULL,
            url         TEXT,
            at          INTEGER NOT NULL,
            PRIMARY KEY (from_name, to_name)
        ) STRICT;",
    ),
    // Why a stream's promotion did or did not happen, as of the last controller pass: what the
    // dashboard and the API show.
    M::up(
        "CREATE TABLE release_promotion_status (
            stream      TEXT PRIMARY KEY,
            status      TEXT NOT NULL,
            at          INTEGER NOT NULL
        ) STRICT;",
    ),
    // Where a stable release was published: mirrored (`mirror`: the release image's pull
    // spec), signed (`signature`: the signature file), its tools extracted (`tools`: the
    // directory). One row per kind; a row is written only once the publication is complete.
    M::up(
        "CREATE TABLE release_publications (
            payload     TEXT NOT NULL,
            kind        TEXT NOT NULL,
            location    TEXT NOT NULL,
            detail      TEXT NOT NULL,
            at          INTEGER NOT NULL,
            PRIMARY KEY (payload, kind)
        ) STRICT;",
    ),
    // OS releases (`build::osgate`; times are unix seconds): each release a stream's `os:`
    // source gave (`images`: JSON arch → image by digest; `base`: the image builds use), the
    // outcome of the last poll, pins, and the OS images waiting for (or decided by) a payload's
    // verification before they enter their stream.
    M::up(
        "CREATE TABLE os_releases (
            stream        TEXT NOT NULL,
            version       TEXT NOT NULL,
            source        TEXT NOT NULL,
            last_modified TEXT,
            versions      TEXT NOT NULL,
            images        TEXT NOT NULL,
            base          TEXT NOT NULL,
            found         INTEGER NOT NULL,
            PRIMARY KEY (stream, version)
        ) STRICT;
        CREATE TABLE os_polls (
            stream      TEXT PRIMARY KEY,
            at          INTEGER NOT NULL,
            ok          INTEGER NOT NULL CHECK (ok IN (0, 1)),
            message     TEXT NOT NULL
        ) STRICT;
        CREATE TABLE os_pins (
            stream      TEXT PRIMARY KEY,
            version     TEXT NOT NULL,
            reason      TEXT NOT NULL,
            at          INTEGER NOT NULL
        ) STRICT;
        CREATE TABLE os_candidates (
            id          INTEGER PRIMARY KEY AUTOINCREMENT,
            stream      TEXT NOT NULL,
            tag         TEXT NOT NULL,
            digest      TEXT NOT NULL,
            version     TEXT NOT NULL,
            build_id    INTEGER REFERENCES builds (id) ON DELETE SET NULL,
            state       TEXT NOT NULL
                        CHECK (state IN ('testing', 'accepted', 'rejected', 'superseded')),
            payload     TEXT,
            reason      TEXT,
            created     INTEGER NOT NULL,
            decided     INTEGER,
            UNIQUE (stream, digest)
        ) STRICT;",
    ),
];

/// [`MIGRATIONS`] as the `Migrations` that [`State::open`] applies.
pub fn migrations() -> Migrations<'static> {
    Migrations::from_slice(MIGRATIONS)
}

/// Why the state database could not be opened, read or changed. Every message names the file.
#[derive(Debug, thiserror::Error)]
pub enum StateError {
    /// The directory of the database file could not be created.
    #[error("cannot create the directory of database {}: {source}", path.display())]
    CreateDir {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// Another process held a write lock for longer than [`BUSY_TIMEOUT`].
    #[error(
        "database {} is locked by another okd-forge; wait for it to finish (or stop it) and retry",
        path.display()
    )]
    Locked {
        /// The database file.
        path: PathBuf,
    },
    /// The schema version is above the one this okd-forge knows.
    #[error(
        "database {} was written by a newer okd-forge (schema version {found} > {supported}); \
         upgrade okd-forge, or point `state:` at another file",
        path.display()
    )]
    TooNew {
        /// The database file.
        path: PathBuf,
        /// The database's schema version.
        found: i64,
        /// The newest schema version this okd-forge knows (the length of [`MIGRATIONS`]).
        supported: usize,
    },
    /// The file is not an SQLite database, or is damaged.
    #[error(
        "{} is not an okd-forge state database or is damaged; move it aside (or point `state:` at \
         another file) and retry",
        path.display()
    )]
    NotADatabase {
        /// The database file.
        path: PathBuf,
    },
    /// The file or its directory cannot be written.
    #[error(
        "database {} is read-only; okd-forge needs to write it and create `-wal` and `-shm` files \
         beside it: check the permissions of the file and its directory",
        path.display()
    )]
    ReadOnly {
        /// The database file.
        path: PathBuf,
    },
    /// A migration failed; the database is left at its previous version.
    #[error("cannot migrate database {}: {source}", path.display())]
    Migrate {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite_migration::Error,
    },
    /// [`State::finish_build`] or [`State::promote`] named a build that was never started.
    #[error("database {}: there is no build {id}", path.display())]
    NoSuchBuild {
        /// The database file.
        path: PathBuf,
        /// The build id.
        id: i64,
    },
    /// [`State::finish_build`] was called with another outcome for a build that already has one.
    #[error(
        "database {}: build {id} already finished as {status}; a build's outcome is recorded once",
        path.display()
    )]
    AlreadyFinished {
        /// The database file.
        path: PathBuf,
        /// The build id.
        id: i64,
        /// The outcome already recorded.
        status: BuildStatus,
    },
    /// A value to store is not UTF-8.
    #[error("database {}: {what} {value:?} is not UTF-8", path.display())]
    NotUtf8 {
        /// The database file.
        path: PathBuf,
        /// What the value is.
        what: &'static str,
        /// The value.
        value: PathBuf,
    },
    /// Any other SQLite error.
    #[error("database {}: {source}", path.display())]
    Sqlite {
        /// The database file.
        path: PathBuf,
        /// The cause.
        source: rusqlite::Error,
    },
}

/// A build about to start, as recorded by [`State::start_build`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct NewBuild {
    /// The stream it builds for.
    pub stream: String,
    /// The component it builds.
    pub component: String,
    /// The stream tag its image is promoted to.
    pub tag: String,
    /// The component's git repository.
    pub git_url: String,
    /// What was asked for: `branch release-4.17`, or the ref text.
    pub revision: String,
    /// The commit built.
    pub commit: String,
    /// The input hash ([`State::cached`]).
    pub input_hash: String,
    /// `buildah` or `native`.
    pub builder: String,
    /// The build log, if kept.
    pub log_path: Option<PathBuf>,
    /// Whether a success is promoted into the stream (false for `--ref` PR builds).
    pub promote: bool,
}

/// How a build ended, as given to [`State::finish_build`].
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
#[serde(tag = "status", rename_all = "lowercase")]
pub enum Outcome {
    /// Built; the digest is recorded in the build cache for the build's input hash.
    Succeeded {
        /// The image digest.
        digest: String,
    },
    /// Not built: the build cache had an image for the same input hash.
    Cached {
        /// The image digest.
        digest: String,
    },
    /// The build failed.
    Failed {
        /// Why, in one line.
        error: String,
    },
}

impl Outcome {
    /// The status a build with this outcome has.
    pub fn status(&self) -> BuildStatus {
        match self {
            Outcome::Succeeded { .. } => BuildStatus::Succeeded,
            Outcome::Cached { .. } => BuildStatus::Cached,
            Outcome::Failed { .. } => BuildStatus::Failed,
        }
    }

    fn digest(&self) -> Option<&str> {
        match self {
            Outcome::Succeeded { digest } | Outcome::Cached { digest } => Some(digest),
            Outcome::Failed { .. } => None,
        }
    }

    fn error(&self) -> Option<&str> {
        match self {
            Outcome::Failed { error } => Some(error),
            _ => None,
        }
    }
}

/// Where a build is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum BuildStatus {
    /// Started, not finished.
    Running,
    /// Built an image.
    Succeeded,
    /// Reused the image of an earlier build with the same input hash.
    Cached,
    /// Failed, or interrupted ([`INTERRUPTED`]).
    Failed,
}

impl BuildStatus {
    /// The name stored in the database and printed: `running`, `succeeded`, `cached`, `failed`.
    pub fn as_str(self) -> &'static str {
        match self {
            BuildStatus::Running => "running",
            BuildStatus::Succeeded => "succeeded",
            BuildStatus::Cached => "cached",
            BuildStatus::Failed => "failed",
        }
    }
}

impl fmt::Display for BuildStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for BuildStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "running" => Ok(BuildStatus::Running),
            "succeeded" => Ok(BuildStatus::Succeeded),
            "cached" => Ok(BuildStatus::Cached),
            "failed" => Ok(BuildStatus::Failed),
            other => Err(format!("unknown build status {other:?}")),
        }
    }
}

impl ToSql for BuildStatus {
    fn to_sql(&self) -> rusqlite::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::from(self.as_str()))
    }
}

impl FromSql for BuildStatus {
    fn column_result(value: ValueRef<'_>) -> FromSqlResult<Self> {
        value
            .as_str()?
            .parse()
            .map_err(|e: String| FromSqlError::Other(e.into()))
    }
}

/// A build as recorded.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct BuildRecord {
    /// Unique, increasing.
    pub id: i64,
    /// What was built.
    #[serde(flatten)]
    pub build: NewBuild,
    /// Where the build is.
    pub status: BuildStatus,
    /// The image digest, when [`BuildStatus::Succeeded`] or [`BuildStatus::Cached`].
    pub digest: Option<String>,
    /// Why it failed, when [`BuildStatus::Failed`].
    pub error: Option<String>,
    /// When it started (RFC 3339 UTC).
    pub started: String,
    /// When it finished (RFC 3339 UTC), unless still running.
    pub finished: Option<String>,
}

/// The digest a stream tag points at.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct StreamTag {
    /// The stream.
    pub stream: String,
    /// The tag.
    pub tag: String,
    /// The image digest.
    pub digest: String,
    /// The build that made it; none for additional images.
    pub build_id: Option<i64>,
    /// When it last changed (RFC 3339 UTC).
    pub updated: String,
}

/// One change of a stream tag.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct TagEvent {
    /// The digest the tag then pointed at.
    pub digest: String,
    /// The digest it pointed at before; none for the first promotion.
    pub previous: Option<String>,
    /// The build that made `digest`; none for additional images.
    pub build_id: Option<i64>,
    /// When (RFC 3339 UTC).
    pub at: String,
}

/// An open state database. `Send + Sync`: share one between threads (calls are serialised), or
/// open the same file several times (in several processes); SQLite's locking keeps writes whole.
#[derive(Debug)]
pub struct State {
    path: PathBuf,
    conn: Mutex<Connection>,
}

/// What went wrong inside a transaction, before the file name is attached.
enum Fail {
    Sql(rusqlite::Error),
    NoSuchBuild(i64),
    AlreadyFinished(i64, BuildStatus),
}

impl From<rusqlite::Error> for Fail {
    fn from(e: rusqlite::Error) -> Self {
        Fail::Sql(e)
    }
}

const BUILD_COLUMNS: &str = "id, stream, component, tag, git_url, revision, git_commit, \
     input_hash, builder, log_path, promote, status, digest, error, started, finished";

impl State {
    /// Opens the database at `path`, creating the file and its directory if needed, and migrates
    /// it to [`MIGRATIONS`]. WAL mode, foreign keys on, [`BUSY_TIMEOUT`]. A database from a newer
    /// okd-forge is refused ([`StateError::TooNew`]), not downgraded.
    pub fn open(path: &Path) -> Result<State, StateError> {
        Self::open_with_timeout(path, BUSY_TIMEOUT)
    }

    /// An empty database in memory, for tests.
    pub fn open_in_memory() -> Result<State, StateError> {
        let path = PathBuf::from(":memory:");
        let conn = Connection::open_in_memory().map_err(|e| sql_error(&path, e))?;
        Self::setup(path, conn, BUSY_TIMEOUT)
    }

    fn open_with_timeout(path: &Path, busy_timeout: Duration) -> Result<State, StateError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|source| StateError::CreateDir {
                path: path.to_path_buf(),
                source,
            })?;
        }
        let conn = Connection::open(path).map_err(|e| sql_error(path, e))?;
        Self::setup(path.to_path_buf(), conn, busy_timeout)
    }

    fn setup(
        path: PathBuf,
        mut conn: Connection,
        busy_timeout: Duration,
    ) -> Result<State, StateError> {
        let sql = |e| sql_error(&path, e);
        conn.busy_timeout(busy_timeout).map_err(sql)?;
        conn.pragma_update(None, "foreign_keys", true)
            .map_err(sql)?;
        enable_wal(&conn, busy_timeout).map_err(sql)?;
        // Every write transaction takes the write lock when it begins, so that it waits for
        // another writer (busy timeout) instead of failing when its read snapshot is stale.
        conn.set_transaction_behavior(TransactionBehavior::Immediate);

        let migrations = migrations();
        let mut retried = false;
        loop {
            let before = user_version(&conn).map_err(sql)?;
            if before > MIGRATIONS.len() as i64 {
                return Err(StateError::TooNew {
                    path,
                    found: before,
                    supported: MIGRATIONS.len(),
                });
            }
            match migrations.to_latest(&mut conn) {
                Ok(()) => break,
                Err(e) => {
                    // Two okd-forge opening the same fresh file: the other one migrated between
                    // our version check and our transaction. Check again; the rest is a no-op.
                    if !retried && user_version(&conn).map_err(sql)? > before {
                        retried = true;
                        continue;
                    }
                    return Err(migrate_error(&path, e));
                }
            }
        }
        Ok(State {
            path,
            conn: Mutex::new(conn),
        })
    }

    /// The database file (`:memory:` in memory).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The schema version of the database (the number of [`MIGRATIONS`] applied).
    pub fn schema_version(&self) -> Result<i64, StateError> {
        self.read(user_version)
    }

    /// Records that a build started. Returns its id (unique, increasing).
    pub fn start_build(&self, b: &NewBuild) -> Result<i64, StateError> {
        let log_path = match &b.log_path {
            None => None,
            Some(p) => Some(p.to_str().ok_or_else(|| StateError::NotUtf8 {
                path: self.path.clone(),
                what: "log path",
                value: p.clone(),
            })?),
        };
        self.write(|tx| {
            tx.execute(
                "INSERT INTO builds (stream, component, tag, git_url, revision, git_commit, \
                 input_hash, builder, log_path, promote, status, started) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)",
                params![
                    b.stream,
                    b.component,
                    b.tag,
                    b.git_url,
                    b.revision,
                    b.commit,
                    b.input_hash,
                    b.builder,
                    log_path,
                    b.promote,
                    BuildStatus::Running,
                    now(),
                ],
            )?;
            Ok(tx.last_insert_rowid())
        })
    }

    /// Records the outcome of build `id`. [`Outcome::Succeeded`] also records input hash →
    /// digest in the build cache; [`Outcome::Cached`] does not (the entry is already there).
    ///
    /// A build that [`State::fail_interrupted`] marked interrupted can still be finished (its
    /// okd-forge was alive after all). Finishing a build again with the outcome it already has
    /// does nothing; with another outcome it is [`StateError::AlreadyFinished`].
    pub fn finish_build(&self, id: i64, outcome: &Outcome) -> Result<(), StateError> {
        self.write(|tx| {
            let row = tx
                .query_row(
                    "SELECT status, digest, error, input_hash FROM builds WHERE id = ?1",
                    [id],
                    |r| {
                        Ok((
                            r.get::<_, BuildStatus>(0)?,
                            r.get::<_, Option<String>>(1)?,
                            r.get::<_, Option<String>>(2)?,
                            r.get::<_, String>(3)?,
                        ))
                    },
                )
                .optional()?;
            let Some((status, digest, error, input_hash)) = row else {
                return Err(Fail::NoSuchBuild(id));
            };
            let open = status == BuildStatus::Running
                || (status == BuildStatus::Failed && error.as_deref() == Some(INTERRUPTED));
            if !open {
                if status == outcome.status()
                    && digest.as_deref() == outcome.digest()
                    && error.as_deref() == outcome.error()
                {
                    return Ok(());
                }
                return Err(Fail::AlreadyFinished(id, status));
            }
            let finished = now();
            tx.execute(
                "UPDATE builds SET status = ?2, digest = ?3, error = ?4, finished = ?5 WHERE id = ?1",
                params![
                    id,
                    outcome.status(),
                    outcome.digest(),
                    outcome.error(),
                    finished
                ],
            )?;
            if let Outcome::Succeeded { digest } = outcome {
                tx.execute(
                    "INSERT INTO build_cache (input_hash, digest, build_id, created) \
                     VALUES (?1, ?2, ?3, ?4) \
                     ON CONFLICT (input_hash) DO UPDATE SET \
                     digest = excluded.digest, build_id = excluded.build_id, created = excluded.created",
                    params![input_hash, digest, id, finished],
                )?;
            }
            Ok(())
        })
    }

    /// A cache hit: the digest last built for this input hash, if any.
    pub fn cached(&self, input_hash: &str) -> Result<Option<String>, StateError> {
        self.read(|c| {
            c.query_row(
                "SELECT digest FROM build_cache WHERE input_hash = ?1",
                [input_hash],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Forgets a cache entry (the image was garbage-collected from the store). Forgetting an
    /// entry that is not there does nothing.
    pub fn forget_cached(&self, input_hash: &str) -> Result<(), StateError> {
        self.write(|tx| {
            tx.execute(
                "DELETE FROM build_cache WHERE input_hash = ?1",
                [input_hash],
            )?;
            Ok(())
        })
    }

    /// Points `stream`/`tag` at `digest`, made by `build_id` (none for additional images), in one
    /// transaction that also appends a [`TagEvent`] to the tag's history. Returns false, and
    /// writes nothing, when the tag already points at `digest` (whatever build made it).
    pub fn promote(
        &self,
        stream: &str,
        tag: &str,
        digest: &str,
        build_id: Option<i64>,
    ) -> Result<bool, StateError> {
        self.write(|tx| {
            let previous: Option<String> = tx
                .query_row(
                    "SELECT digest FROM stream_tags WHERE stream = ?1 AND tag = ?2",
                    [stream, tag],
                    |r| r.get(0),
                )
                .optional()?;
            if previous.as_deref() == Some(digest) {
                return Ok(false);
            }
            if let Some(id) = build_id {
                let exists: bool =
                    tx.query_row("SELECT EXISTS (SELECT 1 FROM builds WHERE id = ?1)", [id], |r| {
                        r.get(0)
                    })?;
                if !exists {
                    return Err(Fail::NoSuchBuild(id));
                }
            }
            let at = now();
            tx.execute(
                "INSERT INTO stream_tags (stream, tag, digest, build_id, updated) \
                 VALUES (?1, ?2, ?3, ?4, ?5) \
                 ON CONFLICT (stream, tag) DO UPDATE SET \
                 digest = excluded.digest, build_id = excluded.build_id, updated = excluded.updated",
                params![stream, tag, digest, build_id, at],
            )?;
            tx.execute(
                "INSERT INTO tag_history (stream, tag, digest, previous, build_id, at) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![stream, tag, digest, previous, build_id, at],
            )?;
            Ok(true)
        })
    }

    /// The current tags of a stream, sorted by tag.
    pub fn stream_tags(&self, stream: &str) -> Result<Vec<StreamTag>, StateError> {
        self.read(|c| {
            let mut s = c.prepare_cached(
                "SELECT stream, tag, digest, build_id, updated FROM stream_tags \
                 WHERE stream = ?1 ORDER BY tag",
            )?;
            let rows = s.query_map([stream], stream_tag_row)?;
            rows.collect()
        })
    }

    /// One tag of a stream, if it was ever promoted.
    pub fn stream_tag(&self, stream: &str, tag: &str) -> Result<Option<StreamTag>, StateError> {
        Ok(self
            .read(|c| {
                let mut s = c.prepare_cached(
                    "SELECT stream, tag, digest, build_id, updated FROM stream_tags \
                     WHERE stream = ?1 AND tag = ?2",
                )?;
                let rows = s.query_map([stream, tag], stream_tag_row)?;
                rows.collect::<Result<Vec<_>, _>>()
            })?
            .pop())
    }

    /// The history of one stream tag, newest first.
    pub fn tag_history(&self, stream: &str, tag: &str) -> Result<Vec<TagEvent>, StateError> {
        self.read(|c| {
            let mut s = c.prepare_cached(
                "SELECT digest, previous, build_id, at FROM tag_history \
                 WHERE stream = ?1 AND tag = ?2 ORDER BY id DESC",
            )?;
            let rows = s.query_map([stream, tag], |r| {
                Ok(TagEvent {
                    digest: r.get(0)?,
                    previous: r.get(1)?,
                    build_id: r.get(2)?,
                    at: r.get(3)?,
                })
            })?;
            rows.collect()
        })
    }

    /// Builds, newest first, of one stream or of all, at most `limit`.
    pub fn builds(
        &self,
        stream: Option<&str>,
        limit: usize,
    ) -> Result<Vec<BuildRecord>, StateError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        self.read(|c| {
            let mut s = c.prepare_cached(&format!(
                "SELECT {BUILD_COLUMNS} FROM builds \
                 WHERE ?1 IS NULL OR stream = ?1 ORDER BY id DESC LIMIT ?2"
            ))?;
            let rows = s.query_map(params![stream, limit], build_record)?;
            rows.collect()
        })
    }

    /// One build.
    pub fn build(&self, id: i64) -> Result<Option<BuildRecord>, StateError> {
        self.read(|c| {
            c.query_row(
                &format!("SELECT {BUILD_COLUMNS} FROM builds WHERE id = ?1"),
                [id],
                build_record,
            )
            .optional()
        })
    }

    /// Marks the builds left running by a crashed okd-forge as failed with [`INTERRUPTED`], and
    /// returns how many. Call it on startup, when no other okd-forge is building with this
    /// database: it cannot tell a crashed build from one running in another process (which can
    /// still [finish](State::finish_build) it afterwards).
    pub fn fail_interrupted(&self) -> Result<usize, StateError> {
        self.write(|tx| {
            Ok(tx.execute(
                "UPDATE builds SET status = ?1, error = ?2, finished = ?3 WHERE status = ?4",
                params![
                    BuildStatus::Failed,
                    INTERRUPTED,
                    now(),
                    BuildStatus::Running
                ],
            )?)
        })
    }

    /// Records the last forced (cron) rebuild of `stream`, in unix seconds.
    pub fn set_last_forced(&self, stream: &str, at_unix: i64) -> Result<(), StateError> {
        self.write(|tx| {
            tx.execute(
                "INSERT INTO stream_schedule (stream, last_forced) VALUES (?1, ?2) \
                 ON CONFLICT (stream) DO UPDATE SET last_forced = excluded.last_forced",
                params![stream, at_unix],
            )?;
            Ok(())
        })
    }

    /// The last forced (cron) rebuild of `stream`, in unix seconds.
    pub fn last_forced(&self, stream: &str) -> Result<Option<i64>, StateError> {
        self.read(|c| {
            c.query_row(
                "SELECT last_forced FROM stream_schedule WHERE stream = ?1",
                [stream],
                |r| r.get(0),
            )
            .optional()
        })
    }

    /// Runs `f` in one write transaction, committed when `f` returns `Ok` and rolled back
    /// otherwise: for stages that keep their own tables in this database (see [`MIGRATIONS`]).
    pub fn transaction<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        self.write(|tx| Ok(f(tx)?))
    }

    /// Runs `f` with the connection, for reads of stages that keep their own tables here.
    pub fn query<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> Result<T, StateError> {
        self.read(f)
    }

    fn lock(&self) -> MutexGuard<'_, Connection> {
        // A panic while the lock was held dropped its transaction, which rolled back: the
        // connection is fine.
        self.conn.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, StateError> {
        f(&self.lock()).map_err(|e| sql_error(&self.path, e))
    }

    /// The one way to change the database: `f` runs in a transaction that holds the write lock
    /// from its start and is committed only if `f` succeeds.
    fn write<T>(
        &self,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<T, Fail>,
    ) -> Result<T, StateError> {
        let mut conn = self.lock();
        let result = conn
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(Fail::Sql)
            .and_then(|tx| {
                let value = f(&tx)?;
                tx.commit()?;
                Ok(value)
            });
        result.map_err(|fail| match fail {
            Fail::Sql(e) => sql_error(&self.path, e),
            Fail::NoSuchBuild(id) => StateError::NoSuchBuild {
                path: self.path.clone(),
                id,
            },
            Fail::AlreadyFinished(id, status) => StateError::AlreadyFinished {
                path: self.path.clone(),
                id,
                status,
            },
        })
    }
}

fn build_record(r: &Row<'_>) -> rusqlite::Result<BuildRecord> {
    Ok(BuildRecord {
        id: r.get(0)?,
        build: NewBuild {
            stream: r.get(1)?,
            component: r.get(2)?,
            tag: r.get(3)?,
            git_url: r.get(4)?,
            revision: r.get(5)?,
            commit: r.get(6)?,
            input_hash: r.get(7)?,
            builder: r.get(8)?,
            log_path: r.get::<_, Option<String>>(9)?.map(PathBuf::from),
            promote: r.get(10)?,
        },
        status: r.get(11)?,
        digest: r.get(12)?,
        error: r.get(13)?,
        started: r.get(14)?,
        finished: r.get(15)?,
    })
}

/// A `stream, tag, digest, build_id, updated` row.
fn stream_tag_row(r: &rusqlite::Row) -> rusqlite::Result<StreamTag> {
    Ok(StreamTag {
        stream: r.get(0)?,
        tag: r.get(1)?,
        digest: r.get(2)?,
        build_id: r.get(3)?,
        updated: r.get(4)?,
    })
}

/// Switches to WAL mode (a no-op in memory, and for a file already in WAL mode).
fn enable_wal(c: &Connection, busy_timeout: Duration) -> rusqlite::Result<()> {
    // Switching a new file needs an exclusive lock, and SQLite reports a conflict with another
    // okd-forge opening the same new file at once instead of waiting: retry for the busy timeout.
    let start = Instant::now();
    loop {
        match c.query_row("PRAGMA journal_mode = WAL", [], |r| r.get::<_, String>(0)) {
            Ok(_) => return Ok(()),
            Err(e)
                if e.sqlite_error_code() == Some(ErrorCode::DatabaseBusy)
                    && start.elapsed() < busy_timeout =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => return Err(e),
        }
    }
}

fn user_version(c: &Connection) -> rusqlite::Result<i64> {
    c.query_row("PRAGMA user_version", [], |r| r.get(0))
}

/// Now, as stored: RFC 3339 UTC to the second.
fn now() -> String {
    let now = time::OffsetDateTime::now_utc();
    now.replace_nanosecond(0)
        .unwrap_or(now)
        .format(&time::format_description::well_known::Rfc3339)
        .expect("the system clock is between the years 0 and 9999")
}

fn sql_error(path: &Path, e: rusqlite::Error) -> StateError {
    known_error(path, e.sqlite_error_code()).unwrap_or_else(|| StateError::Sqlite {
        path: path.to_path_buf(),
        source: e,
    })
}

fn migrate_error(path: &Path, e: rusqlite_migration::Error) -> StateError {
    let code = match &e {
        rusqlite_migration::Error::RusqliteError { err, .. } => err.sqlite_error_code(),
        _ => None,
    };
    known_error(path, code).unwrap_or_else(|| StateError::Migrate {
        path: path.to_path_buf(),
        source: e,
    })
}

/// The SQLite errors a user can act on, with their own messages.
fn known_error(path: &Path, code: Option<ErrorCode>) -> Option<StateError> {
    let path = path.to_path_buf();
    match code? {
        ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked => Some(StateError::Locked { path }),
        ErrorCode::NotADatabase | ErrorCode::DatabaseCorrupt => {
            Some(StateError::NotADatabase { path })
        }
        ErrorCode::ReadOnly => Some(StateError::ReadOnly { path }),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::Arc;

    /// A directory under the system temporary directory, removed when dropped.
    struct TempDir(PathBuf);

    impl TempDir {
        fn new(name: &str) -> TempDir {
            static N: AtomicUsize = AtomicUsize::new(0);
            let dir = std::env::temp_dir().join(format!(
                "okd-forge-state-{}-{}-{name}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ));
            let _ = std::fs::remove_dir_all(&dir);
            std::fs::create_dir_all(&dir).unwrap();
            TempDir(dir)
        }

        fn db(&self) -> PathBuf {
            self.0.join("var").join("forge.db")
        }
    }

    impl Drop for TempDir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn new_build(stream: &str, component: &str, input_hash: &str) -> NewBuild {
        NewBuild {
            stream: stream.into(),
            component: component.into(),
            tag: component.into(),
            git_url: format!("https://github.com/openshift/{component}"),
            revision: "branch release-4.17".into(),
            commit: "0123456789abcdef0123456789abcdef01234567".into(),
            input_hash: input_hash.into(),
            builder: "buildah".into(),
            log_path: Some(PathBuf::from(format!("var/logs/{component}.log"))),
            promote: true,
        }
    }

    fn succeeded(digest: &str) -> Outcome {
        Outcome::Succeeded {
            digest: digest.into(),
        }
    }

    fn count(state: &State, table: &str) -> i64 {
        state
            .read(|c| c.query_row(&format!("SELECT count(*) FROM {table}"), [], |r| r.get(0)))
            .unwrap()
    }

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn state_is_send_and_sync() {
        fn check<T: Send + Sync>() {}
        check::<State>();
        check::<StateError>();
    }

    #[test]
    fn state_open_creates_migrates_and_reopens_as_a_no_op() {
        let dir = TempDir::new("open");
        let path = dir.db();
        let state = State::open(&path).unwrap();
        assert!(path.exists(), "the file and its directory are created");
        assert_eq!(state.schema_version().unwrap(), MIGRATIONS.len() as i64);
        let mode: String = state
            .read(|c| c.query_row("PRAGMA journal_mode", [], |r| r.get(0)))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: bool = state
            .read(|c| c.query_row("PRAGMA foreign_keys", [], |r| r.get(0)))
            .unwrap();
        assert!(fk);
        let id = state.start_build(&new_build("s", "c", "h")).unwrap();
        assert!(state.promote("s", "c", "sha256:a", Some(id)).unwrap());
        drop(state);

        let schema = |p: &Path| -> Vec<String> {
            let c = Connection::open(p).unwrap();
            let mut s = c
                .prepare("SELECT sql FROM sqlite_schema WHERE sql IS NOT NULL ORDER BY name")
                .unwrap();
            s.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<_>>()
                .unwrap()
        };
        let before = schema(&path);
        let state = State::open(&path).unwrap();
        assert_eq!(state.schema_version().unwrap(), MIGRATIONS.len() as i64);
        assert_eq!(schema(&path), before);
        assert_eq!(state.stream_tags("s").unwrap().len(), 1);
        assert_eq!(
            state.build(id).unwrap().unwrap().status,
            BuildStatus::Running
        );
    }

    #[test]
    fn state_from_a_newer_okd_forge_is_refused() {
        let dir = TempDir::new("too-new");
        let path = dir.db();
        drop(State::open(&path).unwrap());
        let newer = MIGRATIONS.len() as i64 + 1;
        Connection::open(&path)
            .unwrap()
            .pragma_update(None, "user_version", newer)
            .unwrap();

        let err = State::open(&path).unwrap_err();
        assert!(
            matches!(err, StateError::TooNew { found, supported, .. }
                if found == newer && supported == MIGRATIONS.len()),
            "{err:?}"
        );
        let message = err.to_string();
        assert!(message.contains(&path.display().to_string()), "{message}");
        assert!(
            message.contains(&format!(
                "newer okd-forge (schema version {newer} > {})",
                MIGRATIONS.len()
            )),
            "{message}"
        );
        // Not downgraded.
        let version: i64 = Connection::open(&path)
            .unwrap()
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(version, newer);
    }

    #[test]
    fn state_open_refuses_a_file_that_is_not_a_database() {
        let dir = TempDir::new("not-db");
        let path = dir.0.join("forge.db");
        std::fs::write(&path, "store: ./var/store\n".repeat(100)).unwrap();
        let err = State::open(&path).unwrap_err();
        assert!(matches!(err, StateError::NotADatabase { .. }), "{err:?}");
        assert!(err.to_string().starts_with(&format!(
            "{} is not an okd-forge state database",
            path.display()
        )));
    }

    #[test]
    fn state_build_round_trip() {
        let state = State::open_in_memory().unwrap();
        let b = new_build("okd-scos-4.17", "installer", "sha256:h1");
        let id = state.start_build(&b).unwrap();
        let second = state
            .start_build(&new_build("okd-scos-4.17", "mco", "sha256:h2"))
            .unwrap();
        assert!(second > id, "ids increase");

        let running = state.build(id).unwrap().unwrap();
        assert_eq!(running.status, BuildStatus::Running);
        assert_eq!(running.build, b);
        assert_eq!(
            (
                running.build.stream.as_str(),
                running.build.component.as_str()
            ),
            ("okd-scos-4.17", "installer")
        );
        assert_eq!(
            (running.digest, running.error, running.finished),
            (None, None, None)
        );
        time::OffsetDateTime::parse(
            &running.started,
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap();
        assert!(running.started.ends_with('Z'), "{}", running.started);

        state.finish_build(id, &succeeded("sha256:d1")).unwrap();
        let done = state.build(id).unwrap().unwrap();
        assert_eq!(done.status, BuildStatus::Succeeded);
        assert_eq!(done.digest.as_deref(), Some("sha256:d1"));
        assert_eq!(done.error, None);
        let finished = done.finished.clone().unwrap();
        assert!(finished >= done.started);

        // Finishing again the same way is a no-op; another way is refused.
        state.finish_build(id, &succeeded("sha256:d1")).unwrap();
        assert_eq!(state.build(id).unwrap().unwrap(), done);
        let err = state
            .finish_build(id, &Outcome::Failed { error: "x".into() })
            .unwrap_err();
        assert!(
            matches!(
                err,
                StateError::AlreadyFinished {
                    status: BuildStatus::Succeeded,
                    ..
                }
            ),
            "{err:?}"
        );
        let err = state
            .finish_build(999, &succeeded("sha256:d1"))
            .unwrap_err();
        assert!(
            matches!(err, StateError::NoSuchBuild { id: 999, .. }),
            "{err:?}"
        );
        assert_eq!(err.to_string(), "database :memory:: there is no build 999");

        let all = state.builds(None, 10).unwrap();
        assert_eq!(
            all.iter().map(|b| b.id).collect::<Vec<_>>(),
            vec![second, id]
        );
        assert_eq!(state.builds(None, 1).unwrap().len(), 1);
        assert_eq!(state.builds(Some("other"), 10).unwrap(), vec![]);
        assert_eq!(state.builds(Some("okd-scos-4.17"), 10).unwrap().len(), 2);
        assert_eq!(state.build(12345).unwrap(), None);

        let json = serde_json::to_value(&done).unwrap();
        assert_eq!(json["status"], "succeeded");
        assert_eq!(json["commit"], b.commit);
    }

    #[test]
    fn state_cache_is_set_by_succeeded_only() {
        let state = State::open_in_memory().unwrap();
        let failed = state
            .start_build(&new_build("s", "a", "sha256:fail"))
            .unwrap();
        state
            .finish_build(
                failed,
                &Outcome::Failed {
                    error: "exit status 1".into(),
                },
            )
            .unwrap();
        assert_eq!(state.cached("sha256:fail").unwrap(), None);
        let record = state.build(failed).unwrap().unwrap();
        assert_eq!(record.status, BuildStatus::Failed);
        assert_eq!(record.error.as_deref(), Some("exit status 1"));
        assert_eq!(record.digest, None);

        let built = state.start_build(&new_build("s", "a", "sha256:h")).unwrap();
        state.finish_build(built, &succeeded("sha256:d")).unwrap();
        assert_eq!(
            state.cached("sha256:h").unwrap().as_deref(),
            Some("sha256:d")
        );

        // A cache hit is recorded as a build, without touching the cache.
        let hit = state.start_build(&new_build("s", "a", "sha256:h")).unwrap();
        state
            .finish_build(
                hit,
                &Outcome::Cached {
                    digest: "sha256:d".into(),
                },
            )
            .unwrap();
        let record = state.build(hit).unwrap().unwrap();
        assert_eq!(record.status, BuildStatus::Cached);
        assert_eq!(record.digest.as_deref(), Some("sha256:d"));
        let cache_build: Option<i64> = state
            .read(|c| {
                c.query_row(
                    "SELECT build_id FROM build_cache WHERE input_hash = 'sha256:h'",
                    [],
                    |r| r.get(0),
                )
            })
            .unwrap();
        assert_eq!(cache_build, Some(built));
        assert_eq!(count(&state, "build_cache"), 1);

        // The last build for a hash wins; forgetting is idempotent.
        let rebuilt = state.start_build(&new_build("s", "a", "sha256:h")).unwrap();
        state.finish_build(rebuilt, &succeeded("sha256:e")).unwrap();
        assert_eq!(
            state.cached("sha256:h").unwrap().as_deref(),
            Some("sha256:e")
        );
        state.forget_cached("sha256:h").unwrap();
        state.forget_cached("sha256:h").unwrap();
        assert_eq!(state.cached("sha256:h").unwrap(), None);
    }

    #[test]
    fn state_promote_is_idempotent_and_keeps_history() {
        let state = State::open_in_memory().unwrap();
        let b1 = state
            .start_build(&new_build("s", "installer", "h1"))
            .unwrap();
        let b2 = state
            .start_build(&new_build("s", "installer", "h2"))
            .unwrap();

        assert!(state
            .promote("s", "installer", "sha256:1", Some(b1))
            .unwrap());
        assert!(!state
            .promote("s", "installer", "sha256:1", Some(b1))
            .unwrap());
        assert!(!state
            .promote("s", "installer", "sha256:1", Some(b2))
            .unwrap());
        assert!(state
            .promote("s", "installer", "sha256:2", Some(b2))
            .unwrap());
        assert!(!state
            .promote("s", "installer", "sha256:2", Some(b2))
            .unwrap());
        assert!(state.promote("s", "installer", "sha256:1", None).unwrap());

        let history = state.tag_history("s", "installer").unwrap();
        let summary: Vec<_> = history
            .iter()
            .map(|e| (e.digest.as_str(), e.previous.as_deref(), e.build_id))
            .collect();
        assert_eq!(
            summary,
            vec![
                ("sha256:1", Some("sha256:2"), None),
                ("sha256:2", Some("sha256:1"), Some(b2)),
                ("sha256:1", None, Some(b1)),
            ]
        );
        let tags = state.stream_tags("s").unwrap();
        assert_eq!(tags.len(), 1);
        assert_eq!(
            (tags[0].digest.as_str(), tags[0].build_id),
            ("sha256:1", None)
        );
        assert_eq!(tags[0].updated, history[0].at);
        assert_eq!(state.tag_history("s", "other").unwrap(), vec![]);

        // An unknown build is refused and nothing is written.
        let err = state
            .promote("s", "installer", "sha256:3", Some(999))
            .unwrap_err();
        assert!(
            matches!(err, StateError::NoSuchBuild { id: 999, .. }),
            "{err:?}"
        );
        assert_eq!(state.tag_history("s", "installer").unwrap().len(), 3);
        assert_eq!(state.stream_tags("s").unwrap()[0].digest, "sha256:1");
    }

    #[test]
    fn state_stream_tags_are_sorted_and_per_stream() {
        let state = State::open_in_memory().unwrap();
        for tag in ["machine-config-operator", "cli", "installer", "base"] {
            state
                .promote("okd-scos-4.17", tag, &format!("sha256:{tag}"), None)
                .unwrap();
        }
        state
            .promote("okd-scos-4.18", "aaa", "sha256:x", None)
            .unwrap();
        let tags = state.stream_tags("okd-scos-4.17").unwrap();
        assert_eq!(
            tags.iter().map(|t| t.tag.as_str()).collect::<Vec<_>>(),
            vec!["base", "cli", "installer", "machine-config-operator"]
        );
        assert!(tags.iter().all(|t| t.stream == "okd-scos-4.17"));
        assert_eq!(state.stream_tags("none").unwrap(), vec![]);
    }

    #[test]
    fn state_fail_interrupted_marks_running_builds() {
        let dir = TempDir::new("interrupted");
        let state = State::open(&dir.db()).unwrap();
        let done = state.start_build(&new_build("s", "a", "h1")).unwrap();
        state.finish_build(done, &succeeded("sha256:a")).unwrap();
        let left1 = state.start_build(&new_build("s", "b", "h2")).unwrap();
        let left2 = state.start_build(&new_build("s", "c", "h3")).unwrap();
        drop(state); // the crash

        let state = State::open(&dir.db()).unwrap();
        assert_eq!(state.fail_interrupted().unwrap(), 2);
        assert_eq!(state.fail_interrupted().unwrap(), 0);
        for id in [left1, left2] {
            let b = state.build(id).unwrap().unwrap();
            assert_eq!(b.status, BuildStatus::Failed);
            assert_eq!(b.error.as_deref(), Some(INTERRUPTED));
            assert!(b.finished.is_some());
        }
        assert_eq!(
            state.build(done).unwrap().unwrap().status,
            BuildStatus::Succeeded
        );

        // A build that was in fact still running elsewhere can still record its outcome.
        state.finish_build(left1, &succeeded("sha256:b")).unwrap();
        assert_eq!(
            state.build(left1).unwrap().unwrap().status,
            BuildStatus::Succeeded
        );
        assert_eq!(state.cached("h2").unwrap().as_deref(), Some("sha256:b"));
    }

    #[test]
    fn state_last_forced() {
        let state = State::open_in_memory().unwrap();
        assert_eq!(state.last_forced("s").unwrap(), None);
        state.set_last_forced("s", 1_700_000_000).unwrap();
        state.set_last_forced("s", 1_700_086_400).unwrap();
        assert_eq!(state.last_forced("s").unwrap(), Some(1_700_086_400));
        assert_eq!(state.last_forced("t").unwrap(), None);
    }

    #[test]
    fn state_concurrent_promotions_from_two_handles_lose_nothing() {
        let dir = TempDir::new("concurrent");
        let path = dir.db();
        drop(State::open(&path).unwrap());
        const N: usize = 50;
        let threads: Vec<_> = ["a", "b"]
            .into_iter()
            .map(|who| {
                let path = path.clone();
                std::thread::spawn(move || {
                    let state = State::open(&path).unwrap();
                    for i in 0..N {
                        let own = format!("{who}-{i}");
                        assert!(state
                            .promote("s", &own, &format!("sha256:{own}"), None)
                            .unwrap());
                        assert!(state
                            .promote("s", "shared", &format!("sha256:{own}"), None)
                            .unwrap());
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }

        let state = State::open(&path).unwrap();
        assert_eq!(state.stream_tags("s").unwrap().len(), 2 * N + 1);
        // Every change of the shared tag is in its history, each `previous` being the change
        // before it: no promotion read a stale current digest.
        let history = state.tag_history("s", "shared").unwrap();
        assert_eq!(history.len(), 2 * N);
        for pair in history.windows(2) {
            assert_eq!(pair[0].previous.as_deref(), Some(pair[1].digest.as_str()));
        }
        assert_eq!(history.last().unwrap().previous, None);
        assert_eq!(
            state.stream_tags("s").unwrap()[N * 2].digest,
            history[0].digest
        );
    }

    #[test]
    fn state_one_handle_shared_between_threads() {
        let state = Arc::new(State::open_in_memory().unwrap());
        let threads: Vec<_> = (0..4)
            .map(|t| {
                let state = Arc::clone(&state);
                std::thread::spawn(move || {
                    for i in 0..25 {
                        let id = state
                            .start_build(&new_build("s", &format!("c{t}-{i}"), "h"))
                            .unwrap();
                        state
                            .finish_build(id, &succeeded(&format!("sha256:{t}-{i}")))
                            .unwrap();
                    }
                })
            })
            .collect();
        for t in threads {
            t.join().unwrap();
        }
        assert_eq!(state.builds(None, 1000).unwrap().len(), 100);
    }

    #[test]
    fn state_concurrent_first_opens_both_migrate() {
        for round in 0..5 {
            let dir = TempDir::new(&format!("first-open-{round}"));
            let path = dir.db();
            std::fs::create_dir_all(path.parent().unwrap()).unwrap();
            let barrier = Arc::new(std::sync::Barrier::new(2));
            let threads: Vec<_> = (0..2)
                .map(|_| {
                    let (path, barrier) = (path.clone(), Arc::clone(&barrier));
                    std::thread::spawn(move || {
                        barrier.wait();
                        State::open(&path).map(|s| s.schema_version().unwrap())
                    })
                })
                .collect();
            for t in threads {
                assert_eq!(t.join().unwrap().unwrap(), MIGRATIONS.len() as i64);
            }
        }
    }

    #[test]
    fn state_locked_by_another_writer() {
        let dir = TempDir::new("locked");
        let path = dir.db();
        let state = State::open_with_timeout(&path, Duration::from_millis(100)).unwrap();
        let other = Connection::open(&path).unwrap();
        other.execute_batch("BEGIN IMMEDIATE").unwrap();

        let err = state.promote("s", "t", "sha256:x", None).unwrap_err();
        assert!(matches!(err, StateError::Locked { .. }), "{err:?}");
        assert_eq!(
            err.to_string(),
            format!(
                "database {} is locked by another okd-forge; wait for it to finish (or stop it) and retry",
                path.display()
            )
        );
        // Reads go on while another okd-forge writes (WAL).
        assert_eq!(state.stream_tags("s").unwrap(), vec![]);

        other.execute_batch("COMMIT").unwrap();
        assert!(state.promote("s", "t", "sha256:x", None).unwrap());
    }

    /// Makes every insert into `table` fail, as a full disk or a bug would.
    fn break_inserts(state: &State, table: &str) {
        state
            .transaction(|tx| {
                tx.execute_batch(&format!(
                    "CREATE TRIGGER break_{table} BEFORE INSERT ON {table} \
                     BEGIN SELECT RAISE(ABORT, 'injected failure'); END"
                ))
            })
            .unwrap();
    }

    #[test]
    fn state_promote_failing_half_way_writes_nothing() {
        let state = State::open_in_memory().unwrap();
        assert!(state.promote("s", "t", "sha256:old", None).unwrap());
        // promote updates `stream_tags` first, then appends to `tag_history`: make the second
        // statement fail. Without the transaction, the tag would point at sha256:new with no
        // history row for it.
        break_inserts(&state, "tag_history");

        let err = state.promote("s", "t", "sha256:new", None).unwrap_err();
        assert!(err.to_string().contains("injected failure"), "{err}");
        assert_eq!(state.stream_tags("s").unwrap()[0].digest, "sha256:old");
        assert_eq!(state.tag_history("s", "t").unwrap().len(), 1);

        let err = state.promote("s", "u", "sha256:new", None).unwrap_err();
        assert!(err.to_string().contains("injected failure"), "{err}");
        assert_eq!(state.stream_tags("s").unwrap().len(), 1, "no tag u");
    }

    #[test]
    fn state_finish_build_failing_half_way_writes_nothing() {
        let state = State::open_in_memory().unwrap();
        let id = state.start_build(&new_build("s", "a", "h")).unwrap();
        // finish_build updates the build first, then records the cache entry: make that fail.
        break_inserts(&state, "build_cache");

        assert!(state.finish_build(id, &succeeded("sha256:d")).is_err());
        let b = state.build(id).unwrap().unwrap();
        assert_eq!(
            (b.status, b.digest, b.finished),
            (BuildStatus::Running, None, None)
        );
        assert_eq!(state.cached("h").unwrap(), None);
    }
}
