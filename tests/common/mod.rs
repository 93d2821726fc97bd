//! Helpers shared by the integration tests.
#![allow(dead_code, unused_macros)]

pub mod contacts;
pub mod node;
pub mod pg_server;
pub mod postgres;
pub mod protocol;
pub mod raw_peer;
pub mod store;
pub mod webdriver;

/// Instantiates storage scenarios once per backend: `async fn name(fixture)` becomes the
/// tests `sqlite::name` and `postgres::name`, each given a fresh fixture by the backend's
/// constructor; `benches` are the same, marked `#[ignore]` with the given message.
macro_rules! fixture_tests {
    (
        ignore: $ignore:literal,
        backends: { $($backend:ident => $fixture:path),+ $(,)? },
        tests: $tests:tt,
        benches: $benches:tt $(,)?
    ) => {
        $(
            mod $backend {
                use super::*;
                crate::common::fixture_tests!(@tests $fixture, $tests);
                crate::common::fixture_tests!(@benches $ignore, $fixture, $benches);
            }
        )+
    };
    (@tests $fixture:path, [$($test:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $test() {
                super::$test($fixture().await).await;
            }
        )*
    };
    (@benches $ignore:literal, $fixture:path, [$($bench:ident),* $(,)?]) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            #[ignore = $ignore]
            async fn $bench() {
                super::$bench($fixture().await).await;
            }
        )*
    };
}
#[allow(unused_imports)]
pub(crate) use fixture_tests;
