//! The one rustls crypto provider of Kraken: ring.
//!
//! reqwest is built without a provider of its own (`rustls-no-provider`, so
//! that aws-lc-rs, a long C build, stays out of the build) and panics when a
//! client is built before the process has a default provider. Every program
//! calls [`install_provider`] first thing in `main`, and kraken-core calls it
//! again wherever it builds an HTTP client (the remote handle, the agent's
//! transport, notifications, the S3 store), so a program embedding
//! kraken-core that forgets it still works. sqlx, lettre and object_store
//! use ring on their own.

/// Install ring as the process's default rustls crypto provider, unless a
/// default is installed already (by an earlier call or by the program,
/// which then keeps its own). Cheap after the first call; never fails.
pub fn install_provider() {
    if rustls::crypto::CryptoProvider::get_default().is_none() {
        // Fails only when another thread installed one meanwhile: fine too.
        let _ = rustls::crypto::ring::default_provider().install_default();
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn installs_a_default_provider_and_may_be_called_again() {
        super::install_provider();
        super::install_provider();
        assert!(rustls::crypto::CryptoProvider::get_default().is_some());
    }
}
