//! Claims in the shared store: two machines with their own local caches, building at once,
//! pay once for each image; a holder killed mid-generation is taken over after its TTL; a
//! store that does not honour create-only writes gets a warning and today's behaviour; `plan`,
//! `stats`, `verify --remote` and `gc --remote` know claims.

use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use super::{Machine, count, objects, shared_directory};
use crate::support::servers::{Kind, Server, block_on};

/// Starts a build without waiting for it, in a process group of its own (so that a test can
/// kill the preprocessor and its provider with it).
fn start(command: &mut Command) -> Child {
    command.stdout(Stdio::null()).stderr(Stdio::piped());
    std::os::unix::process::CommandExt::process_group(command, 0);
    command.spawn().unwrap()
}

/// Waits for a build, failing the test rather than hanging it.
fn finish(child: Child) -> Output {
    let started = Instant::now();
    let id = child.id();
    let waiter = std::thread::spawn(move || child.wait_with_output().unwrap());
    while !waiter.is_finished() {
        if started.elapsed() > Duration::from_secs(120) {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{id}")])
                .status();
            panic!("a build hung");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    waiter.join().unwrap()
}

/// Two machines with separate local caches and one store build the same book at once.
fn together(table: &str, env: Vec<(&'static str, String)>) -> (Machine, Machine, String, String) {
    let a = Machine::new(table, env.clone());
    let b = Machine::new(table, env);
    let (ca, cb) = (
        start(&mut a.mdbook_build(1.0)),
        start(&mut b.mdbook_build(1.0)),
    );
    let (oa, ob) = (finish(ca), finish(cb));
    let (la, lb) = (
        String::from_utf8_lossy(&oa.stderr).into_owned(),
        String::from_utf8_lossy(&ob.stderr).into_owned(),
    );
    assert!(oa.status.success(), "{la}");
    assert!(ob.status.success(), "{lb}");
    (a, b, la, lb)
}

fn generated_once(kind: Kind) {
    let Some(server) = Server::start(kind) else {
        return;
    };
    let (a, b, la, lb) = together(&server.storage_table(""), server.env());
    assert_eq!(a.calls() + b.calls(), 2, "A:\n{la}\nB:\n{lb}");
    assert_eq!(a.page(), b.page());
    assert!(
        !la.contains("WARN") && !lb.contains("WARN"),
        "A:\n{la}\nB:\n{lb}"
    );
    let after = objects(&server);
    assert_eq!(count(&after, "records/"), 2, "{after:?}");
    assert_eq!(
        count(&after, "claims/"),
        0,
        "every claim was let go: {after:?}"
    );
}

#[test]
fn s3_builds_at_once_generate_each_image_once() {
    generated_once(Kind::S3);
}

#[test]
fn azure_blob_builds_at_once_generate_each_image_once() {
    generated_once(Kind::Azure);
}

#[test]
fn a_shared_directory_builds_at_once_generate_each_image_once() {
    let shared = tempfile::tempdir().unwrap();
    let (a, b, la, lb) = together(&shared_directory(shared.path()), Vec::new());
    assert_eq!(a.calls() + b.calls(), 2, "A:\n{la}\nB:\n{lb}");
    assert_eq!(a.page(), b.page());
    let claims = shared.path().join("claims");
    let left: Vec<_> = std::fs::read_dir(&claims).unwrap().collect();
    assert!(left.is_empty(), "{left:?}");
}

/// fake-gcs-server says it takes create-only writes and ignores the condition: the probe finds
/// out, each build warns once, and both generate, as before claims.
#[test]
fn a_store_that_ignores_create_only_writes_gets_a_warning_and_no_claims() {
    let Some(server) = Server::start(Kind::Gcs) else {
        return;
    };
    let (a, b, la, lb) = together(&server.storage_table(""), server.env());
    for log in [&la, &lb] {
        assert_eq!(log.matches("WARN").count(), 1, "{log}");
        assert!(log.contains("does not honour create-only writes"), "{log}");
    }
    assert_eq!(a.calls() + b.calls(), 4);
    assert_eq!(count(&objects(&server), "claims/"), 0);
}

/// The claim of `key` (a chapter's second image) as the store holds it, when it does.
fn claim_in(server: Option<&Server>, shared: &std::path::Path) -> Option<serde_json::Value> {
    let bytes = match server {
        Some(server) => {
            let operator = server.operator();
            let listed = block_on(operator.list("claims/")).ok()?;
            let entry = listed.into_iter().find(|e| e.metadata().mode().is_file())?;
            block_on(operator.read(entry.path())).ok()?.to_vec()
        }
        None => {
            let entry = std::fs::read_dir(shared.join("claims"))
                .ok()?
                .next()?
                .ok()?;
            std::fs::read(entry.path()).ok()?
        }
    };
    serde_json::from_slice(&bytes).ok()
}

/// Machine A claims the slow image and is killed with SIGKILL while its provider draws (the
/// preprocessor and the provider with it). B sees the live claim in `plan` and `stats`, waits,
/// finds it dead once it has not changed for its TTL, takes it over and finishes.
fn a_dead_holder_is_taken_over(server: Option<&Server>) {
    let shared = tempfile::tempdir().unwrap();
    let extra = "claim-ttl = \"2s\"\n";
    let (table, env) = match server {
        Some(server) => (server.storage_table(extra), server.env()),
        None => (
            format!("{}{extra}", shared_directory(shared.path())),
            Vec::new(),
        ),
    };
    let a = Machine::new(&table, env.clone());
    let mut holder = start(&mut a.mdbook_build(60.0));
    let started = Instant::now();
    let claim = loop {
        if let Some(claim) = claim_in(server, shared.path())
            && claim["renewals"].as_u64() >= Some(1)
        {
            break claim;
        }
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "A never claimed the image"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    let b = Machine::new(&table, env);
    let plan = b.imagegen(&["plan", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&plan.stdout).unwrap();
    let claimed: Vec<&serde_json::Value> = rows
        .iter()
        .filter(|r| r["claimed_by"].is_string())
        .collect();
    assert_eq!(claimed.len(), 1, "{rows:?}");
    assert!(
        claimed[0]["prompt"]
            .as_str()
            .unwrap()
            .contains("lighthouse")
    );
    let stats = String::from_utf8_lossy(&b.imagegen(&["stats"]).stdout).into_owned();
    assert!(
        stats.contains("1 image being generated on other machines now"),
        "{stats}"
    );

    Command::new("kill")
        .args(["-KILL", "--", &format!("-{}", holder.id())])
        .status()
        .unwrap();
    holder.wait().unwrap();
    assert_eq!(claim_in(server, shared.path()).unwrap()["id"], claim["id"]);

    let started = Instant::now();
    let output = finish(start(&mut b.mdbook_build(0.0)));
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    assert!(log.contains("has expired; taking it over"), "{log}");
    assert!(started.elapsed() < Duration::from_secs(30), "{log}");
    assert_eq!(
        b.calls(),
        1,
        "B made only the image A never finished:\n{log}"
    );
    assert!(b.page().matches("<figure").count() == 2, "{}", b.page());
    assert!(
        claim_in(server, shared.path()).is_none(),
        "B let its claim go"
    );
}

#[test]
fn s3_a_dead_holder_is_taken_over_after_its_ttl() {
    if let Some(server) = Server::start(Kind::S3) {
        a_dead_holder_is_taken_over(Some(&server));
    }
}

#[test]
fn a_shared_directory_dead_holder_is_taken_over_after_its_ttl() {
    a_dead_holder_is_taken_over(None);
}

/// `gc --remote` deletes expired claims and what is not a claim under `claims/`; a live claim
/// stays, and `verify --remote` shows it without calling it a problem.
#[test]
fn gc_deletes_expired_claims_and_verify_shows_live_ones() {
    let shared = tempfile::tempdir().unwrap();
    let table = shared_directory(shared.path());
    let a = Machine::new(&table, Vec::new());
    a.build();
    let claim = |key: char, expires: &str| {
        format!(
            "{{\"key\": \"{k}\", \"host\": \"ci-7\", \"pid\": 4242, \"id\": \"00ff\", \"claimed_at\": \"2026-01-01T00:00:00Z\", \"expires_at\": \"{expires}\", \"ttl_seconds\": 180, \"renewals\": 0}}",
            k = key.to_string().repeat(64)
        )
    };
    let dir = shared.path().join("claims");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("a".repeat(64)), claim('a', "2026-01-01T00:03:00Z")).unwrap();
    std::fs::write(dir.join("b".repeat(64)), claim('b', "2999-01-01T00:00:00Z")).unwrap();
    std::fs::write(dir.join("c".repeat(64)), claim('d', "2999-01-01T00:00:00Z")).unwrap();
    std::fs::write(dir.join("junk"), "\u{1b}[31mnot a claim").unwrap();

    let verify = a.imagegen(&["verify", "--remote"]);
    let text = String::from_utf8_lossy(&verify.stdout).into_owned();
    assert!(verify.status.success(), "{text}");
    assert!(
        text.contains("1 image being generated on other machines now"),
        "{text}"
    );
    assert!(
        text.contains("bbbbbbbbbbbb  ci-7 (process 4242) until 2999"),
        "{text}"
    );

    let gc = a.imagegen(&["gc", "--remote", "--grace", "0s", "--json"]);
    let value: serde_json::Value = serde_json::from_slice(&gc.stdout).unwrap();
    let mut gone: Vec<&str> = value["remote"]
        .as_array()
        .unwrap()
        .iter()
        .map(|o| o["path"].as_str().unwrap())
        .collect();
    gone.sort();
    let expected = [
        format!("claims/{}", "a".repeat(64)),
        format!("claims/{}", "c".repeat(64)),
        "claims/junk".to_owned(),
    ];
    assert_eq!(gone, expected, "{value}");
    let left: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    assert_eq!(left, ["b".repeat(64)]);
}

/// Clock skew: a claim written by a machine whose clock runs years ahead (its expiry far in
/// the future) that nobody renews is still taken over once it has not changed for its TTL on
/// the waiting machine's own clock.
#[test]
fn a_claim_from_a_clock_far_ahead_is_taken_over_once_it_stops_changing() {
    let shared = tempfile::tempdir().unwrap();
    let b = Machine::new(&shared_directory(shared.path()), Vec::new());
    let plan = b.imagegen(&["plan", "--json"]);
    let rows: Vec<serde_json::Value> = serde_json::from_slice(&plan.stdout).unwrap();
    let key = rows[1]["key"].as_str().unwrap();
    let dir = shared.path().join("claims");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(
        dir.join(key),
        format!("{{\"key\": \"{key}\", \"host\": \"ahead\", \"pid\": 1, \"id\": \"0a\", \"claimed_at\": \"2999-01-01T00:00:00Z\", \"expires_at\": \"2999-01-01T00:00:02Z\", \"ttl_seconds\": 2, \"renewals\": 0}}"),
    )
    .unwrap();
    let started = Instant::now();
    let output = finish(start(&mut b.mdbook_build(0.0)));
    let log = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{log}");
    assert!(
        log.contains("the claim of ahead (process 1) has expired; taking it over"),
        "{log}"
    );
    assert!(started.elapsed() >= Duration::from_secs(2), "{log}");
    assert_eq!(b.calls(), 2, "{log}");
}
