//! `kraken-schema-worker`: a schema worker process (see
//! `kraken_core::schema::sandbox`). Kraken starts it as
//! `kraken-schema-worker __kraken-schema-worker`; it is what
//! `KRAKEN_SCHEMA_WORKER` may name for a program embedding Kraken that does
//! not serve as a worker itself.

use std::process::ExitCode;

fn main() -> ExitCode {
    kraken_core::schema::sandbox::run_worker_if_requested();
    eprintln!(
        "kraken-schema-worker evaluates stage schemas for Kraken, which starts it as \
         `kraken-schema-worker {}`; it is not meant to be run by hand",
        kraken_core::schema::sandbox::WORKER_ARG
    );
    ExitCode::from(2)
}
