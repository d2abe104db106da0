//! Lease pools: a cap on how many jobs hold one scarce resource at once (cloud quota, a lab's
//! machines), like Prow's boskos as ci-operator uses it.
//!
//! Each pool has a capacity and hands out numbered resource names, `<pool>-0` … `<pool>-<capacity-1>`
//! (a boskos resource name such as `aws-quota-slice-3`), the lowest free one first. A job asks for
//! one lease from each pool it names; [`LeasePools::acquire`] waits until it has them all, taking
//! the pools in sorted name order so two jobs can never each hold what the other waits for. Waiters
//! are served first come, first served. A [`Lease`] goes back to its pool when it is dropped: after
//! the job ends, fails, times out, panics or is cancelled.
//!
//! ```
//! # tokio::runtime::Runtime::new().unwrap().block_on(async {
//! use release::jobs::leases::LeasePools;
//!
//! let pools = LeasePools::new([("aws-quota-slice", 2)]).unwrap();
//! let leases = pools.acquire(&["aws-quota-slice".to_string()]).await.unwrap();
//! assert_eq!(leases.resources(), ["aws-quota-slice-0"]);
//! assert_eq!(pools.in_use("aws-quota-slice"), Some(1));
//! drop(leases);
//! assert_eq!(pools.in_use("aws-quota-slice"), Some(0));
//! # });
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// Why leases cannot be had.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LeaseError {
    /// A job names a pool that is not configured.
    #[error(
        "unknown lease pool '{pool}'; the configured pools are: {}",
        if known.is_empty() { "(none)".to_string() } else { known.join(", ") }
    )]
    UnknownPool {
        /// The name asked for.
        pool: String,
        /// The configured pool names, sorted.
        known: Vec<String>,
    },
    /// A pool that can never hand out a lease, or has no usable name.
    #[error("lease pool '{pool}': {reason}")]
    InvalidPool {
        /// The pool.
        pool: String,
        /// What is wrong with it.
        reason: String,
    },
    /// The pools were closed ([`LeasePools::close`]) while the job waited.
    #[error("lease pool '{pool}' was closed while waiting for a lease")]
    Closed {
        /// The pool waited on.
        pool: String,
    },
}

/// One pool: its capacity, the permits that cap it, and which numbered resources are free.
#[derive(Debug)]
struct Pool {
    name: String,
    capacity: usize,
    permits: Arc<Semaphore>,
    free: Mutex<BTreeSet<usize>>,
}

impl Pool {
    fn free(&self) -> MutexGuard<'_, BTreeSet<usize>> {
        // The set is always consistent between statements, so a panic elsewhere cannot corrupt it.
        self.free.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// The lease pools of one okd-forge instance, by name. Cheap to clone: clones share the pools.
#[derive(Debug, Clone, Default)]
pub struct LeasePools {
    pools: Arc<BTreeMap<String, Arc<Pool>>>,
}

impl LeasePools {
    /// Pools from `name → capacity`. A capacity of 0 (a pool that would make its jobs wait
    /// forever), an empty name or one with characters other than ASCII letters, digits, `-`, `_`
    /// and `.` (resource names end up in environment variables and file names) is an error.
    pub fn new<N: Into<String>>(
        pools: impl IntoIterator<Item = (N, usize)>,
    ) -> Result<LeasePools, LeaseError> {
        let mut map = BTreeMap::new();
        for (name, capacity) in pools {
            let name = name.into();
            let invalid = |reason: &str| LeaseError::InvalidPool {
                pool: name.clone(),
                reason: reason.to_string(),
            };
            if name.is_empty()
                || !name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            {
                return Err(invalid(
                    "a pool name is made of ASCII letters, digits, '-', '_' and '.'",
                ));
            }
            if capacity == 0 {
                return Err(invalid(
                    "capacity 0 would make its jobs wait forever; give it at least 1",
                ));
            }
            if capacity > Semaphore::MAX_PERMITS {
                return Err(invalid("capacity too large"));
            }
            let pool = Pool {
                name: name.clone(),
                capacity,
                permits: Arc::new(Semaphore::new(capacity)),
                free: Mutex::new((0..capacity).collect()),
            };
            if map.insert(name.clone(), Arc::new(pool)).is_some() {
                return Err(invalid("configured twice"));
            }
        }
        Ok(LeasePools {
            pools: Arc::new(map),
        })
    }

    /// The configured pool names, sorted.
    pub fn names(&self) -> Vec<String> {
        self.pools.keys().cloned().collect()
    }

    /// How many leases of `pool` are held now; `None` for a pool that is not configured.
    pub fn in_use(&self, pool: &str) -> Option<usize> {
        self.pools
            .get(pool)
            .map(|p| p.capacity - p.permits.available_permits())
    }

    /// The capacity of `pool`; `None` for a pool that is not configured.
    pub fn capacity(&self, pool: &str) -> Option<usize> {
        self.pools.get(pool).map(|p| p.capacity)
    }

    /// Check that every name is a configured pool, without waiting (for configuration checks).
    pub fn check(&self, names: &[String]) -> Result<(), LeaseError> {
        for name in names {
            self.pool(name)?;
        }
        Ok(())
    }

    fn pool(&self, name: &str) -> Result<&Arc<Pool>, LeaseError> {
        self.pools.get(name).ok_or_else(|| LeaseError::UnknownPool {
            pool: name.to_string(),
            known: self.names(),
        })
    }

    /// One lease from each pool in `names` (a name listed twice counts once), waiting as long as
    /// it takes. An unknown pool fails at once, before anything is taken. The leases come back in
    /// the order of `names`. Dropping the future while it waits gives back what it already took.
    pub async fn acquire(&self, names: &[String]) -> Result<Leases, LeaseError> {
        let mut order: Vec<&str> = Vec::new();
        for name in names {
            if !order.contains(&name.as_str()) {
                order.push(name);
            }
        }
        let pools = order
            .iter()
            .map(|n| self.pool(n).cloned())
            .collect::<Result<Vec<_>, _>>()?;
        let mut sorted: Vec<&Arc<Pool>> = pools.iter().collect();
        sorted.sort_by(|a, b| a.name.cmp(&b.name));
        let mut taken: BTreeMap<String, Lease> = BTreeMap::new();
        for pool in sorted {
            let permit = Arc::clone(&pool.permits)
                .acquire_owned()
                .await
                .map_err(|_| LeaseError::Closed {
                    pool: pool.name.clone(),
                })?;
            // A permit guarantees a free number: there are as many permits as free numbers, and
            // a lease returns its number before its permit.
            let index = pool.free().pop_first();
            let Some(index) = index else {
                unreachable!(
                    "lease pool '{}' has a permit but no free resource",
                    pool.name
                )
            };
            taken.insert(
                pool.name.clone(),
                Lease {
                    resource: format!("{}-{index}", pool.name),
                    pool: Arc::clone(pool),
                    index,
                    _permit: permit,
                },
            );
        }
        let leases = order
            .iter()
            .filter_map(|n| taken.remove(*n))
            .collect::<Vec<_>>();
        Ok(Leases { leases })
    }

    /// Close every pool: jobs waiting for a lease stop waiting with [`LeaseError::Closed`], and so
    /// does every later [`LeasePools::acquire`]. Leases already held stay valid until dropped.
    pub fn close(&self) {
        for pool in self.pools.values() {
            pool.permits.close();
        }
    }
}

/// One leased resource, given back to its pool when dropped.
#[derive(Debug)]
pub struct Lease {
    pool: Arc<Pool>,
    index: usize,
    resource: String,
    // Dropped after `Drop::drop` has returned the number, so the next holder finds it free.
    _permit: OwnedSemaphorePermit,
}

impl Lease {
    /// The pool it came from.
    pub fn pool(&self) -> &str {
        &self.pool.name
    }

    /// The resource name, `<pool>-<n>`.
    pub fn resource(&self) -> &str {
        &self.resource
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        self.pool.free().insert(self.index);
    }
}

/// The leases of one job, in the order the job named its pools. Dropping it releases them all.
#[derive(Debug, Default)]
pub struct Leases {
    leases: Vec<Lease>,
}

impl Leases {
    /// No leases (a job that needs none).
    pub fn none() -> Leases {
        Leases::default()
    }

    /// The leased resource names, in the job's order.
    pub fn resources(&self) -> Vec<&str> {
        self.leases.iter().map(Lease::resource).collect()
    }

    /// The leases, in the job's order.
    pub fn iter(&self) -> impl Iterator<Item = &Lease> {
        self.leases.iter()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.leases.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn names(n: &[&str]) -> Vec<String> {
        n.iter().map(|s| s.to_string()).collect()
    }

    #[tokio::test]
    async fn numbered_resources_lowest_free_first() {
        let pools = LeasePools::new([("quota", 3)]).unwrap();
        let a = pools.acquire(&names(&["quota"])).await.unwrap();
        let b = pools.acquire(&names(&["quota"])).await.unwrap();
        assert_eq!(a.resources(), ["quota-0"]);
        assert_eq!(b.resources(), ["quota-1"]);
        drop(a);
        let c = pools.acquire(&names(&["quota"])).await.unwrap();
        assert_eq!(c.resources(), ["quota-0"]);
        assert_eq!(pools.in_use("quota"), Some(2));
        assert_eq!(pools.capacity("quota"), Some(3));
    }

    #[tokio::test]
    async fn several_pools_in_the_jobs_order_and_duplicates_once() {
        let pools = LeasePools::new([("b-pool", 1), ("a-pool", 1)]).unwrap();
        let l = pools
            .acquire(&names(&["b-pool", "a-pool", "b-pool"]))
            .await
            .unwrap();
        assert_eq!(l.resources(), ["b-pool-0", "a-pool-0"]);
        assert_eq!(
            l.iter().map(Lease::pool).collect::<Vec<_>>(),
            ["b-pool", "a-pool"]
        );
        assert_eq!(pools.in_use("a-pool"), Some(1));
        assert_eq!(pools.in_use("b-pool"), Some(1));
    }

    #[tokio::test]
    async fn unknown_pool_names_it_and_the_known_ones_and_takes_nothing() {
        let pools = LeasePools::new([("aws", 1), ("gcp", 2)]).unwrap();
        let err = pools.acquire(&names(&["aws", "azure"])).await.unwrap_err();
        assert_eq!(
            err.to_string(),
            "unknown lease pool 'azure'; the configured pools are: aws, gcp"
        );
        assert_eq!(pools.in_use("aws"), Some(0));
        assert!(pools.check(&names(&["gcp"])).is_ok());
        assert!(pools.check(&names(&["nope"])).is_err());
        assert_eq!(pools.in_use("nope"), None);
        let none = LeasePools::default();
        assert_eq!(
            none.check(&names(&["x"])).unwrap_err().to_string(),
            "unknown lease pool 'x'; the configured pools are: (none)"
        );
    }

    #[test]
    fn invalid_pools() {
        let e = LeasePools::new([("aws", 0)]).unwrap_err();
        assert!(e.to_string().contains("capacity 0"), "{e}");
        let e = LeasePools::new([("a b", 1)]).unwrap_err();
        assert!(e.to_string().contains("ASCII"), "{e}");
        let e = LeasePools::new([("a", 1), ("a", 2)]).unwrap_err();
        assert!(e.to_string().contains("twice"), "{e}");
    }

    #[tokio::test]
    async fn a_waiter_gets_the_lease_when_it_is_released() {
        let pools = LeasePools::new([("q", 1)]).unwrap();
        let first = pools.acquire(&names(&["q"])).await.unwrap();
        let p = pools.clone();
        let waiter = tokio::spawn(async move { p.acquire(&names(&["q"])).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!waiter.is_finished(), "the second acquire must wait");
        drop(first);
        let second = tokio::time::timeout(Duration::from_secs(5), waiter)
            .await
            .expect("released lease is handed on")
            .unwrap()
            .unwrap();
        assert_eq!(second.resources(), ["q-0"]);
    }

    #[tokio::test]
    async fn released_after_a_panic() {
        let pools = LeasePools::new([("q", 1)]).unwrap();
        let p = pools.clone();
        let task = tokio::spawn(async move {
            let _leases = p.acquire(&names(&["q"])).await.unwrap();
            panic!("job panicked while holding its lease");
        });
        assert!(task.await.is_err());
        assert_eq!(pools.in_use("q"), Some(0));
    }

    #[tokio::test]
    async fn cancelled_wait_gives_back_what_it_took() {
        // Holding "b" forces a waiter for ["a", "b"] to take "a" and wait for "b"; dropping that
        // waiter must give "a" back.
        let pools = LeasePools::new([("a", 1), ("b", 1)]).unwrap();
        let b = pools.acquire(&names(&["b"])).await.unwrap();
        let wait = tokio::time::timeout(
            Duration::from_millis(50),
            pools.acquire(&names(&["a", "b"])),
        )
        .await;
        assert!(wait.is_err(), "must still be waiting for b");
        assert_eq!(pools.in_use("a"), Some(0));
        drop(b);
    }

    #[tokio::test]
    async fn close_stops_waiters() {
        let pools = LeasePools::new([("q", 1)]).unwrap();
        let held = pools.acquire(&names(&["q"])).await.unwrap();
        let p = pools.clone();
        let waiter = tokio::spawn(async move { p.acquire(&names(&["q"])).await });
        tokio::time::sleep(Duration::from_millis(20)).await;
        pools.close();
        let err = waiter.await.unwrap().unwrap_err();
        assert_eq!(err, LeaseError::Closed { pool: "q".into() });
        drop(held);
    }
}
