//! The remote store against an S3 API on 127.0.0.1 that refuses, fails and answers as S3 does.

use std::path::Path;

use wiremock::matchers::{method, path_regex};
use wiremock::{Mock, MockServer, ResponseTemplate};

use super::*;
use crate::config::{Mode, Scheme, Storage};

const SECRET: &str = "wJalrXUtnFEMI-not-a-real-key";

fn s3(endpoint: &str, mode: Mode) -> Storage {
    Storage {
        scheme: Scheme::S3,
        bucket: "book".into(),
        region: Some("us-east-1".into()),
        endpoint: Some(endpoint.into()),
        root: "imagegen".into(),
        public_url: None,
        mode,
        anonymous: false,
    }
}

fn open(storage: &Storage) -> Remote {
    let var = |name: &str| match name {
        "AWS_ACCESS_KEY_ID" => Some("AKIDEXAMPLE".to_owned()),
        "AWS_SECRET_ACCESS_KEY" => Some(SECRET.to_owned()),
        _ => None,
    };
    Remote::open(storage, Path::new("/nonexistent"), &var).unwrap()
}

fn s3_error(status: u16, code: &str) -> ResponseTemplate {
    ResponseTemplate::new(status)
        .insert_header("content-type", "application/xml")
        .set_body_string(format!(
            "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{code} for {SECRET}</Message><RequestId>4442587FB7D0A2F9</RequestId></Error>"
        ))
}

fn object() -> Object {
    Object {
        path: "masters/ab/abcd.png".into(),
        bytes: b"\x89PNG".to_vec(),
        content_type: "image/png",
    }
}

#[test]
fn credentials_that_cannot_write_make_the_build_read_only_not_failed() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(MockServer::start());
    runtime.block_on(
        Mock::given(method("PUT"))
            .respond_with(s3_error(403, "AccessDenied"))
            .expect(1)
            .mount(&server),
    );
    let remote = open(&s3(&server.uri(), Mode::ReadWrite));
    let error = remote.upload(&[object()]).unwrap_err();
    let message = error.to_string();
    assert!(message.contains("PermissionDenied"), "{message}");
    assert!(!message.contains(SECRET), "{message}");
    assert!(remote.degrade::<()>(Err(error)).is_none());
    assert!(remote.is_up() && !remote.can_write());
    // Read-only from now on: no further request.
    assert!(remote.degrade(remote.upload(&[object()])).is_none());
    runtime.block_on(server.verify());
}

#[test]
fn an_outage_is_retried_a_bounded_number_of_times_then_switches_the_remote_off() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(MockServer::start());
    runtime.block_on(
        Mock::given(method("GET"))
            .and(path_regex("^/book/imagegen/masters/"))
            .respond_with(s3_error(503, "SlowDown"))
            .expect(1 + RETRIES as u64)
            .mount(&server),
    );
    let remote = open(&s3(&server.uri(), Mode::ReadWrite));
    let result = remote.read(&["masters/ab/abcd.png".to_owned()]);
    let message = result.as_ref().unwrap_err().to_string();
    assert!(message.contains("cannot read"), "{message}");
    assert!(!message.contains(SECRET), "{message}");
    assert!(remote.degrade(result).is_none());
    assert!(!remote.is_up() && !remote.can_write());
    runtime.block_on(server.verify());
}

#[test]
fn a_missing_object_is_none_and_an_existing_one_is_not_overwritten() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(MockServer::start());
    runtime.block_on(async {
        Mock::given(method("GET"))
            .respond_with(s3_error(404, "NoSuchKey"))
            .mount(&server)
            .await;
        // S3's answer to `If-None-Match: *` on an existing key.
        Mock::given(method("PUT"))
            .respond_with(s3_error(412, "PreconditionFailed"))
            .mount(&server)
            .await;
    });
    let remote = open(&s3(&server.uri(), Mode::ReadWrite));
    assert_eq!(
        remote.read(&["records/ab/x.json".to_owned()]).unwrap(),
        [None]
    );
    let uploaded = remote.upload(&[object()]).unwrap();
    assert_eq!(
        uploaded,
        Uploaded {
            written: 0,
            existed: 1
        }
    );
    let requests = runtime.block_on(server.received_requests()).unwrap();
    let put = requests
        .iter()
        .find(|r| r.method.as_str() == "PUT")
        .unwrap();
    assert_eq!(put.headers.get("if-none-match").unwrap(), "*");
    assert_eq!(put.headers.get("content-type").unwrap(), "image/png");
    assert_eq!(put.headers.get("cache-control").unwrap(), IMMUTABLE);
}

#[test]
fn read_only_mode_never_sends_a_write() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let server = runtime.block_on(MockServer::start());
    let remote = open(&s3(&server.uri(), Mode::ReadOnly));
    assert!(!remote.can_write());
    assert!(remote.upload(&[object()]).is_err());
    assert!(remote.delete(&["masters/ab/abcd.png".to_owned()]).is_err());
    assert!(
        runtime
            .block_on(server.received_requests())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn messages_lose_secrets_and_query_strings() {
    let text = "error sending request for url (https://acct.blob.core.windows.net/c/x.png?sv=2021&sig=abc%2F) with key hunter22hunter\n\u{1b}[2J# injected";
    let mut secrets = crate::outside::Secrets::default();
    secrets.add("hunter22hunter");
    let scrubbed = scrub(text, &secrets);
    assert_eq!(
        scrubbed,
        "error sending request for url (https://acct.blob.core.windows.net/c/x.png?…) with key [redacted] [2J# injected"
    );
}

#[test]
fn azure_errors_lose_the_parameter_values_they_echo() {
    let connection =
        "DefaultEndpointsProtocol=https;AccountName=acct;AccountKey=c2VjcmV0LWFjY291bnQta2V5;";
    let storage = Storage {
        scheme: Scheme::Azblob,
        bucket: "c".into(),
        region: None,
        endpoint: Some("https://acct.blob.core.windows.net".into()),
        root: "imagegen".into(),
        public_url: None,
        mode: Mode::ReadOnly,
        anonymous: false,
    };
    let var =
        |name: &str| (name == "AZURE_STORAGE_CONNECTION_STRING").then(|| connection.to_owned());
    let remote = Remote::open(&storage, Path::new("/nonexistent"), &var).unwrap();
    let text = "AzblobError { code: \"AuthenticationFailed\", query_parameter_value: \"sv=2022&sig=abc\", detail: \"key c2VjcmV0LWFjY291bnQta2V5\" }";
    let scrubbed = scrub(text, &remote.secrets);
    assert!(!scrubbed.contains("sig=abc"), "{scrubbed}");
    assert!(!scrubbed.contains("c2VjcmV0LWFjY291bnQta2V5"), "{scrubbed}");
}

#[test]
fn object_paths_mirror_the_local_layout() {
    assert_eq!(paths::master("abcdef", "png"), "masters/ab/abcdef.png");
    assert_eq!(paths::record("cd12-x.json"), "records/cd/cd12-x.json");
    assert_eq!(paths::record_shard("ef99"), "records/ef/");
    assert_eq!(paths::asset("ab-64w-1.webp"), "assets/ab-64w-1.webp");
    assert_eq!(content_type("x.avif"), "image/avif");
    assert_eq!(content_type("x.json"), "application/json");
}
