//! The provider environment a test generates in: its key, its variables, and waits that are
//! recorded instead of taken.

use std::path::Path;
use std::sync::Mutex;
use std::time::Duration;

use crate::config::Config;
use crate::outside::Secrets;
use crate::provider::{self, Env, Failure, Master};
use crate::request::Request;

/// The key the tests' environment holds.
pub(crate) const KEY: &str = "sk-test-7b1e0c55d4";

/// Runs `work` in a provider environment over `config`, rooted at `root`, that reads variables
/// through `var` and knows `secrets`; returns what it gave and the waits it asked for (recorded,
/// not taken).
pub(crate) fn within<T>(
    config: &Config,
    root: &Path,
    var: &(dyn Fn(&str) -> Option<String> + Sync),
    secrets: &Secrets,
    work: impl FnOnce(&Env<'_>) -> T,
) -> (T, Vec<Duration>) {
    let waits = Mutex::new(Vec::new());
    let sleep = |wait| waits.lock().unwrap().push(wait);
    let env = Env {
        config,
        root,
        sleep: &sleep,
        var,
        secrets,
    };
    let result = work(&env);
    (result, waits.into_inner().unwrap())
}

/// [`within`] `root`, where no variable is set and nothing is secret.
pub(crate) fn offline<T>(config: &Config, root: &Path, work: impl FnOnce(&Env<'_>) -> T) -> T {
    within(config, root, &|_| None, &Secrets::default(), work).0
}

/// Runs `work` on a blocking thread, as a build does, in a provider environment with the key
/// in `key_var`; returns what it gave and the waits it asked for (recorded, not taken).
pub(crate) async fn in_env<T: Send + 'static>(
    config: Config,
    key_var: &'static str,
    work: impl FnOnce(&Config, &Env<'_>) -> T + Send + 'static,
) -> (T, Vec<Duration>) {
    tokio::task::spawn_blocking(move || {
        let var = |name: &str| (name == key_var).then(|| KEY.to_owned());
        let secrets = Secrets::of_book(config.key_vars(), &var);
        within(&config, Path::new("."), &var, &secrets, |env| {
            work(&config, env)
        })
    })
    .await
    .unwrap()
}

/// What one generation did.
pub(crate) struct Run {
    pub(crate) result: Result<Master, Failure>,
    pub(crate) waits: Vec<Duration>,
}

impl Run {
    pub(crate) fn master(self) -> Master {
        match self.result {
            Ok(master) => master,
            Err(failure) => panic!("expected an image, got: {}", failure.message),
        }
    }

    pub(crate) fn failure(self) -> Failure {
        match self.result {
            Ok(_) => panic!("expected a failure"),
            Err(failure) => failure,
        }
    }
}

/// Generates on a blocking thread, as a build does, recording the waits instead of taking them.
pub(crate) async fn generate(config: Config, request: Request) -> Run {
    generate_keyed(config, request, "TEST_KEY").await
}

/// [`generate`] with the key in the environment variable `key_var`.
pub(crate) async fn generate_keyed(config: Config, request: Request, key_var: &'static str) -> Run {
    let (result, waits) = in_env(config, key_var, move |_, env| {
        provider::generate(&request, env)
    })
    .await;
    Run { result, waits }
}
