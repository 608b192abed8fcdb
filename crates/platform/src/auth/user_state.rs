//! What an access token cannot say once issued: that its user was disabled, or given another
//! role, since. Authentication re-reads both from `users`, at most once per
//! [`USER_STATE_TTL`] per user and process, so a disabled user's access token is refused
//! within seconds (at once on the process that disabled it) for one indexed lookup per user
//! every few seconds, instead of staying good until it expires.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Accounts, UserState};

/// How long a user's role and disabled flag are trusted before being read again.
pub const USER_STATE_TTL: Duration = Duration::from_secs(5);
/// Beyond this many users, expired entries are dropped (and all of them if none expired), so
/// a flood of distinct tokens cannot grow the map without bound.
const MAX_ENTRIES: usize = 10_000;

type Entry = (Instant, Option<UserState>);

/// A per-process, short-lived cache of [`Accounts::user_state`]; cheap to clone.
#[derive(Clone)]
pub struct UserStates {
    accounts: Accounts,
    ttl: Duration,
    cache: Arc<Mutex<HashMap<Uuid, Entry>>>,
}

impl UserStates {
    pub fn new(accounts: Accounts, ttl: Duration) -> Self {
        Self {
            accounts,
            ttl,
            cache: Arc::default(),
        }
    }

    /// The user's current role and disabled flag; `None` for an id no user has.
    pub async fn get(&self, id: Uuid) -> Result<Option<UserState>, sqlx::Error> {
        if let Some((at, state)) = self.lock().get(&id) {
            if at.elapsed() < self.ttl {
                return Ok(*state);
            }
        }
        let state = self.accounts.user_state(id).await?;
        let mut cache = self.lock();
        if cache.len() >= MAX_ENTRIES {
            let ttl = self.ttl;
            cache.retain(|_, (at, _)| at.elapsed() < ttl);
            if cache.len() >= MAX_ENTRIES {
                cache.clear();
            }
        }
        cache.insert(id, (Instant::now(), state));
        Ok(state)
    }

    /// Drops what is known of `id`, after a change to that user in this process.
    pub fn forget(&self, id: Uuid) {
        self.lock().remove(&id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Uuid, Entry>> {
        // The map holds no invariant a panicking holder could break: use it regardless.
        self.cache.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}
