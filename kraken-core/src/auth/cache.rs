//! Authenticated sessions kept in memory, so that a request with a known
//! token costs no SQL query (before: the session, the user and their roles,
//! three queries per request).
//!
//! Correctness rests on three rules:
//!
//! * **This server forgets at once** what it changes itself: a logout, an
//!   expired session, a user's password, roles, `enabled` or `superadmin`
//!   flag, a deleted project ([`SessionCache::forget_token`],
//!   [`SessionCache::forget_user`], [`SessionCache::forget_all`]).
//! * **Other servers** on the same database (and other processes on the same
//!   SQLite file) cannot tell this one, so an entry is trusted for at most
//!   [`SESSION_CACHE_MAX_AGE`] after the database was read for it; then the
//!   next request reads the session, the user and the roles again. That is
//!   the bound on how long a change made elsewhere can go unnoticed here.
//! * **No stale entry comes back**: every forget bumps an epoch, and an entry
//!   read before that bump is not stored (a request that read the database
//!   just before a logout, and finishes just after, does not re-insert the
//!   logged-out session).

use std::collections::HashMap;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use super::Principal;

/// How long a session read from the database is trusted without reading it
/// again: the longest a logout, password change, role change or disabled
/// user done through *another* server goes unnoticed by this one.
pub const SESSION_CACHE_MAX_AGE: Duration = Duration::from_secs(2);

/// At most this many sessions are kept; past it the expired ones go, and if
/// none has expired, all of them (the next requests read them again).
const MAX_ENTRIES: usize = 10_000;

#[derive(Debug)]
struct Entry {
    who: Arc<Principal>,
    /// The session's last use as this server knows it (ms).
    last_used: i64,
    /// When the database was read for it (before the queries started).
    read_at: Instant,
}

#[derive(Debug, Default)]
struct Inner {
    entries: HashMap<String, Entry>,
    epoch: u64,
}

/// Sessions by token, see the module documentation.
#[derive(Debug, Default)]
pub struct SessionCache {
    inner: RwLock<Inner>,
}

/// A cached session: who it stands for and when it was last used (ms).
#[derive(Debug, Clone)]
pub struct Cached {
    /// The principal.
    pub who: Arc<Principal>,
    /// Last use of the session as known here (ms since the epoch).
    pub last_used: i64,
}

/// What a loader must hand back to [`SessionCache::insert`]: the epoch and
/// the time before it read the database.
#[derive(Debug, Clone, Copy)]
pub struct Ticket {
    epoch: u64,
    read_at: Instant,
}

impl SessionCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner.read().unwrap_or_else(|e| e.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner.write().unwrap_or_else(|e| e.into_inner())
    }

    /// The session of `token` if it was read from the database less than
    /// [`SESSION_CACHE_MAX_AGE`] ago.
    pub fn get(&self, token: &str) -> Option<Cached> {
        let inner = self.read();
        let e = inner.entries.get(token)?;
        (e.read_at.elapsed() < SESSION_CACHE_MAX_AGE).then(|| Cached {
            who: e.who.clone(),
            last_used: e.last_used,
        })
    }

    /// Take this before reading a session from the database.
    pub fn ticket(&self) -> Ticket {
        Ticket {
            epoch: self.read().epoch,
            read_at: Instant::now(),
        }
    }

    /// Keep a session read from the database after `ticket` was taken,
    /// unless something was forgotten since (then it may be stale).
    pub fn insert(&self, ticket: Ticket, token: &str, who: Arc<Principal>, last_used: i64) {
        let mut inner = self.write();
        if inner.epoch != ticket.epoch {
            return;
        }
        if inner.entries.len() >= MAX_ENTRIES && !inner.entries.contains_key(token) {
            inner
                .entries
                .retain(|_, e| e.read_at.elapsed() < SESSION_CACHE_MAX_AGE);
            if inner.entries.len() >= MAX_ENTRIES {
                inner.entries.clear();
            }
        }
        inner.entries.insert(
            token.to_string(),
            Entry {
                who,
                last_used,
                read_at: ticket.read_at,
            },
        );
    }

    /// Record that this server marked the session as used at `last_used`.
    pub fn touched(&self, token: &str, last_used: i64) {
        if let Some(e) = self.write().entries.get_mut(token) {
            e.last_used = e.last_used.max(last_used);
        }
    }

    /// Forget one session (logout, expiry).
    pub fn forget_token(&self, token: &str) {
        let mut inner = self.write();
        inner.epoch += 1;
        inner.entries.remove(token);
    }

    /// Forget every session of a user (password, roles, flags changed).
    pub fn forget_user(&self, user_id: i64) {
        let mut inner = self.write();
        inner.epoch += 1;
        inner.entries.retain(|_, e| e.who.user_id != user_id);
    }

    /// Forget everything (a change that may touch any user's roles).
    pub fn forget_all(&self) {
        let mut inner = self.write();
        inner.epoch += 1;
        inner.entries.clear();
    }

    /// How many sessions are kept (fresh or not).
    pub fn len(&self) -> usize {
        self.read().entries.len()
    }

    /// Whether no session is kept.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn who(user_id: i64) -> Arc<Principal> {
        let mut p = Principal::local_admin(user_id);
        p.superadmin = false;
        Arc::new(p)
    }

    #[test]
    fn kept_sessions_are_found_and_forgotten() {
        let c = SessionCache::default();
        let t = c.ticket();
        c.insert(t, "a", who(1), 10);
        let t = c.ticket();
        c.insert(t, "b", who(1), 10);
        let t = c.ticket();
        c.insert(t, "c", who(2), 10);
        assert_eq!(c.get("a").unwrap().who.user_id, 1);
        c.touched("a", 20);
        assert_eq!(c.get("a").unwrap().last_used, 20);
        c.forget_token("a");
        assert!(c.get("a").is_none());
        c.forget_user(1);
        assert!(c.get("b").is_none());
        assert_eq!(c.get("c").unwrap().who.user_id, 2);
        c.forget_all();
        assert!(c.is_empty());
    }

    #[test]
    fn a_read_older_than_a_forget_is_not_kept() {
        let c = SessionCache::default();
        let before = c.ticket();
        c.forget_user(1);
        c.insert(before, "a", who(1), 10);
        assert!(c.get("a").is_none());
        assert_eq!(c.len(), 0);
    }

    #[test]
    fn entries_read_long_ago_are_not_trusted() {
        let c = SessionCache::default();
        let old = Ticket {
            epoch: 0,
            read_at: Instant::now()
                .checked_sub(SESSION_CACHE_MAX_AGE)
                .expect("an instant in the past"),
        };
        c.insert(old, "a", who(1), 10);
        assert_eq!(c.len(), 1);
        assert!(c.get("a").is_none());
    }
}
