//! The schema worker program of the end-to-end tests. The test server runs
//! inside the test binary, which cannot serve as a worker itself (libtest
//! owns its `main`); `kraken_tests` points the schema sandbox at this
//! program, as `kraken-server` points it at itself.

fn main() -> std::process::ExitCode {
    kraken_core::schema::sandbox::run_worker_if_requested();
    eprintln!("kraken-tests-schema-worker is started by the tests as a schema worker");
    std::process::ExitCode::from(2)
}
