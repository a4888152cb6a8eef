//! SQLite connections handed out without sqlx's pool.
//!
//! sqlx's `Pool` pings a connection before it hands it out (unless told
//! not to) and always once more after it comes back, in a task of its own
//! that must finish before the connection can be handed out again. On
//! SQLite a ping is a round trip to the connection's worker thread, so
//! every statement cost three round trips and a spawned task instead of
//! one; with one writer connection the next write also waited for the last
//! one's ping. On this machine kind a round trip is two thread switches of
//! about 15 µs each: creating a one-job flow made ~600 switches.
//!
//! A SQLite file does not go away under an open connection the way a
//! network peer does, so there is nothing to test: [`SqliteConns`] keeps
//! open connections in a list and a semaphore bounds how many are out.
//! Ordering is still right when a caller is dropped mid-statement: a
//! connection's worker thread runs its commands in order (a dropped
//! transaction queues its rollback first), so whoever takes the connection
//! next waits behind what is left.

use std::sync::{Mutex, PoisonError};

use sqlx::ConnectOptions;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use tokio::sync::{Semaphore, SemaphorePermit};

use crate::error::{Error, Result};

/// Up to `max` connections to one SQLite database, opened as needed.
pub(crate) struct SqliteConns {
    opts: SqliteConnectOptions,
    free: Mutex<Vec<SqliteConnection>>,
    permits: Semaphore,
}

/// A connection taken from [`SqliteConns`]; it goes back when dropped.
pub(crate) struct Conn<'a> {
    conn: Option<SqliteConnection>,
    from: &'a SqliteConns,
    _permit: SemaphorePermit<'a>,
}

impl SqliteConns {
    /// Open the first connection (so a bad path fails here) and allow up to
    /// `max` at once.
    pub(crate) async fn open(opts: SqliteConnectOptions, max: usize) -> Result<SqliteConns> {
        let first = opts.connect().await?;
        Ok(SqliteConns {
            opts,
            free: Mutex::new(vec![first]),
            permits: Semaphore::new(max.max(1)),
        })
    }

    /// Wait for a free connection (or open one while fewer than `max` are).
    pub(crate) async fn acquire(&self) -> Result<Conn<'_>> {
        let permit = self.permits.acquire().await.map_err(|_| {
            Error::Transport("the SQLite database was closed (the server is stopping)".into())
        })?;
        let free = self
            .free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .pop();
        let conn = match free {
            Some(c) => c,
            None => self.opts.connect().await?,
        };
        Ok(Conn {
            conn: Some(conn),
            from: self,
            _permit: permit,
        })
    }

    /// Refuse new users and close the idle connections; one in use closes
    /// when it is given back.
    pub(crate) async fn close(&self) {
        self.permits.close();
        let idle = std::mem::take(&mut *self.free.lock().unwrap_or_else(PoisonError::into_inner));
        for c in idle {
            if let Err(e) = sqlx::Connection::close(c).await {
                tracing::warn!(error = %e, "closing a SQLite connection failed");
            }
        }
    }
}

impl std::ops::Deref for Conn<'_> {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        self.conn
            .as_ref()
            .expect("a connection is present until dropped")
    }
}

impl std::ops::DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.conn
            .as_mut()
            .expect("a connection is present until dropped")
    }
}

impl Drop for Conn<'_> {
    fn drop(&mut self) {
        let Some(conn) = self.conn.take() else { return };
        if !self.from.permits.is_closed() {
            self.from
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
        // Closed: dropping the connection ends its worker thread, which
        // closes the database handle.
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;
    use std::time::Duration;

    use sqlx::Connection;

    use super::*;

    async fn count(conns: &SqliteConns) -> i64 {
        let mut c = conns.acquire().await.unwrap();
        sqlx::query_scalar("SELECT COUNT(*) FROM t")
            .fetch_one(&mut *c)
            .await
            .unwrap()
    }

    /// Insert a row in a transaction, committed or dropped.
    async fn insert_in_transaction(conns: &SqliteConns, commit: bool) {
        let mut c = conns.acquire().await.unwrap();
        let mut tx = c.begin().await.unwrap();
        sqlx::query("INSERT INTO t VALUES (1)")
            .execute(&mut *tx)
            .await
            .unwrap();
        if commit {
            tx.commit().await.unwrap();
        }
    }

    #[tokio::test]
    async fn bounded_reused_safe_after_a_dropped_transaction_and_closed() {
        let dir = tempfile::tempdir().unwrap();
        let opts = SqliteConnectOptions::from_str(&format!(
            "sqlite://{}",
            dir.path().join("t.db").display()
        ))
        .unwrap()
        .create_if_missing(true);
        let conns = SqliteConns::open(opts, 2).await.unwrap();
        {
            let mut c = conns.acquire().await.unwrap();
            sqlx::query("CREATE TABLE t (x INTEGER)")
                .execute(&mut *c)
                .await
                .unwrap();
        }

        // Two at once; a third waits until one is given back.
        let a = conns.acquire().await.unwrap();
        let b = conns.acquire().await.unwrap();
        let third = tokio::time::timeout(Duration::from_millis(50), conns.acquire()).await;
        assert!(third.is_err(), "a third connection was handed out");
        drop(a);
        let c = conns.acquire().await.unwrap();
        drop((b, c));
        // At most two were ever opened, and both are kept.
        assert_eq!(conns.free.lock().unwrap().len(), 2);

        // A transaction dropped without commit is rolled back before the
        // connection's next user runs anything.
        insert_in_transaction(&conns, false).await;
        assert_eq!(count(&conns).await, 0);
        insert_in_transaction(&conns, true).await;
        assert_eq!(count(&conns).await, 1);

        conns.close().await;
        let err = conns.acquire().await.err().expect("acquired after close");
        assert!(err.to_string().contains("closed"), "{err}");
    }
}
