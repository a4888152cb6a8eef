//! Login throttling: failed logins are counted per user name and per source
//! address; past a number of failures within a window, that user (or
//! address) must wait before trying again, twice as long after every further
//! failure. A successful login clears the user's count.
//!
//! The counts live in memory: one server process keeps its own (several
//! servers behind one database each count what they see).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// When to throttle logins.
#[derive(Debug, Clone)]
pub struct LoginPolicy {
    /// Failures of one user name before it waits.
    pub user_failures: u32,
    /// Failures from one source address (any user) before it waits.
    pub address_failures: u32,
    /// Failures older than this (since the last one) are forgotten.
    pub window: Duration,
    /// The first wait; each further failure doubles it.
    pub first_delay: Duration,
    /// The longest wait.
    pub max_delay: Duration,
}

impl Default for LoginPolicy {
    fn default() -> Self {
        LoginPolicy {
            user_failures: 5,
            address_failures: 20,
            window: Duration::from_secs(15 * 60),
            first_delay: Duration::from_secs(2),
            max_delay: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
enum Key {
    User(String),
    Address(IpAddr),
}

impl std::fmt::Display for Key {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Key::User(u) => write!(f, "user '{u}'"),
            Key::Address(a) => write!(f, "address {a}"),
        }
    }
}

#[derive(Debug)]
struct Entry {
    failures: u32,
    last: Instant,
    blocked_until: Option<Instant>,
}

/// Entries kept before expired ones are swept.
const SWEEP_AT: usize = 10_000;
/// Entries kept at most (the oldest unblocked ones go first).
const MAX_ENTRIES: usize = 100_000;

/// Failed-login counts of one server process.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    policy: LoginPolicy,
    entries: Mutex<HashMap<Key, Entry>>,
}

impl LoginLimiter {
    /// A limiter with a policy.
    pub fn new(policy: LoginPolicy) -> LoginLimiter {
        LoginLimiter {
            policy,
            entries: Mutex::default(),
        }
    }

    fn keys(user: &str, address: Option<IpAddr>) -> Vec<Key> {
        let mut keys = vec![Key::User(user.to_string())];
        keys.extend(address.map(Key::Address));
        keys
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<Key, Entry>> {
        // A panic while holding the lock leaves counts that are still usable.
        self.entries.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// `Err(wait)` when this user or address must wait before trying again.
    pub fn check(&self, user: &str, address: Option<IpAddr>) -> Result<(), Duration> {
        let now = Instant::now();
        let entries = self.lock();
        let wait = Self::keys(user, address)
            .iter()
            .filter_map(|k| entries.get(k).and_then(|e| e.blocked_until))
            .filter(|until| *until > now)
            .map(|until| until - now)
            .max();
        match wait {
            Some(w) => {
                tracing::warn!(user, address = ?address, wait_secs = w.as_secs_f64(), "login refused: too many failed logins");
                Err(w)
            }
            None => Ok(()),
        }
    }

    /// Count a failed login.
    pub fn failed(&self, user: &str, address: Option<IpAddr>) {
        let now = Instant::now();
        let p = &self.policy;
        let mut entries = self.lock();
        if entries.len() >= SWEEP_AT {
            Self::sweep(&mut entries, now, p.window);
        }
        for key in Self::keys(user, address) {
            let limit = match key {
                Key::User(_) => p.user_failures,
                Key::Address(_) => p.address_failures,
            };
            let e = entries.entry(key.clone()).or_insert(Entry {
                failures: 0,
                last: now,
                blocked_until: None,
            });
            let blocked = e.blocked_until.is_some_and(|u| u > now);
            if !blocked && now.duration_since(e.last) > p.window {
                e.failures = 0;
            }
            e.failures = e.failures.saturating_add(1);
            e.last = now;
            if e.failures >= limit {
                let doublings = (e.failures - limit).min(20);
                let delay = p
                    .first_delay
                    .saturating_mul(1 << doublings)
                    .min(p.max_delay);
                e.blocked_until = Some(now + delay);
                tracing::warn!(%key, failures = e.failures, wait_secs = delay.as_secs_f64(), "too many failed logins: throttled");
            } else {
                tracing::info!(%key, failures = e.failures, "failed login");
            }
        }
    }

    /// A successful login: the user's count starts again (the address's
    /// count fades with the window, so one good account does not clear it).
    pub fn succeeded(&self, user: &str) {
        self.lock().remove(&Key::User(user.to_string()));
    }

    fn sweep(entries: &mut HashMap<Key, Entry>, now: Instant, window: Duration) {
        entries.retain(|_, e| {
            e.blocked_until.is_some_and(|u| u > now) || now.duration_since(e.last) <= window
        });
        if entries.len() >= MAX_ENTRIES {
            // Under a flood of distinct names: keep only what blocks someone.
            entries.retain(|_, e| e.blocked_until.is_some_and(|u| u > now));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> LoginPolicy {
        LoginPolicy {
            user_failures: 3,
            address_failures: 5,
            window: Duration::from_secs(60),
            first_delay: Duration::from_millis(200),
            max_delay: Duration::from_secs(10),
        }
    }

    #[test]
    fn throttles_a_user_after_failures_then_doubles_and_resets() {
        let l = LoginLimiter::new(policy());
        let ip: IpAddr = "10.0.0.1".parse().unwrap();
        for _ in 0..2 {
            assert!(l.check("alice", Some(ip)).is_ok());
            l.failed("alice", Some(ip));
        }
        assert!(l.check("alice", Some(ip)).is_ok());
        l.failed("alice", Some(ip));
        let w = l.check("alice", Some(ip)).unwrap_err();
        assert!(w > Duration::from_millis(100) && w <= Duration::from_millis(200));
        // Another user from the same address is not throttled.
        assert!(l.check("bob", Some(ip)).is_ok());
        // One more failure doubles the wait.
        l.failed("alice", Some(ip));
        let w = l.check("alice", None).unwrap_err();
        assert!(w > Duration::from_millis(300), "{w:?}");
        l.succeeded("alice");
        assert!(l.check("alice", None).is_ok());
    }

    #[test]
    fn throttles_an_address_across_users() {
        let l = LoginLimiter::new(policy());
        let ip: IpAddr = "10.0.0.2".parse().unwrap();
        let other: IpAddr = "10.0.0.3".parse().unwrap();
        for i in 0..5 {
            l.failed(&format!("u{i}"), Some(ip));
        }
        assert!(l.check("carol", Some(ip)).is_err());
        assert!(l.check("carol", Some(other)).is_ok());
    }
}
