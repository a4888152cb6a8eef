//! `kraken version`: the server's version.

use kraken_core::Kraken;

use crate::out::Out;

/// Prints the server's version.
pub async fn run(k: &Kraken, out: &Out) -> anyhow::Result<()> {
    let v = k.get_server_version().await?;
    out.value(&v, &v.version)
}
