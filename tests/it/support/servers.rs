//! Object-store servers on 127.0.0.1 for the remote-cache tests: moto (S3), Azurite (Azure Blob)
//! and fake-gcs-server (GCS), each started per test on a free port with its data in memory, and
//! stopped (its whole process group) when the test ends. `scripts/install-tools` installs them
//! under `~/.cache/mdbook-imagegen/test-tools/bin`. Without them a test is skipped with a note,
//! except under `CI`, where it fails.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Azurite's development account and its well-known key (published in Azurite's README).
pub(crate) const AZURE_ACCOUNT: &str = "devstoreaccount1";
pub(crate) const AZURE_KEY: &str =
    "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw==";

/// The bucket (or container) every test uses; each test has its own server.
pub(crate) const BUCKET: &str = "book-images";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    S3,
    Azure,
    Gcs,
}

/// A running server; stopped on drop.
pub(crate) struct Server {
    pub(crate) kind: Kind,
    pub(crate) port: u16,
    child: Option<Child>,
}

impl Server {
    /// Starts a server with an empty bucket, or `None` (skip) when it is not installed and
    /// this is not CI.
    pub(crate) fn start(kind: Kind) -> Option<Server> {
        Server::start_on(kind, free_port())
    }

    /// Starts a server on a given port (to bring one back after stopping it).
    pub(crate) fn start_on(kind: Kind, port: u16) -> Option<Server> {
        let name = match kind {
            Kind::S3 => "moto_server",
            Kind::Azure => "azurite-blob",
            Kind::Gcs => "fake-gcs-server",
        };
        let binary = tools_bin().join(name);
        if !binary.exists() {
            assert!(
                std::env::var_os("CI").is_none(),
                "`{}` is missing; run scripts/install-tools",
                binary.display()
            );
            eprintln!(
                "skipping: `{}` is missing; run scripts/install-tools",
                binary.display()
            );
            return None;
        }
        let port_text = port.to_string();
        let args: Vec<String> = match kind {
            Kind::S3 => vec!["-H".into(), "127.0.0.1".into(), "-p".into(), port_text],
            Kind::Azure => [
                "--blobHost",
                "127.0.0.1",
                "--blobPort",
                &port_text,
                "--inMemoryPersistence",
                "--skipApiVersionCheck",
                "--loose",
                "--disableTelemetry",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
            Kind::Gcs => [
                "-scheme",
                "http",
                "-host",
                "127.0.0.1",
                "-port",
                &port_text,
                "-backend",
                "memory",
                "-public-host",
                &format!("127.0.0.1:{port}"),
                "-external-url",
                &format!("http://127.0.0.1:{port}"),
                "-log-level",
                "error",
            ]
            .iter()
            .map(|s| (*s).to_owned())
            .collect(),
        };
        let mut command = Command::new(&binary);
        command
            .args(&args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        // Its own process group, so that stopping it stops whatever it started.
        std::os::unix::process::CommandExt::process_group(&mut command, 0);
        let child = command.spawn().expect("the test server starts");
        let server = Server {
            kind,
            port,
            child: Some(child),
        };
        server.wait_ready();
        server.create_bucket();
        Some(server)
    }

    pub(crate) fn endpoint(&self) -> String {
        match self.kind {
            Kind::Azure => format!("http://127.0.0.1:{}/{AZURE_ACCOUNT}", self.port),
            _ => format!("http://127.0.0.1:{}", self.port),
        }
    }

    /// The `[preprocessor.imagegen.storage]` table for this server.
    pub(crate) fn storage_table(&self, extra: &str) -> String {
        let scheme = match self.kind {
            Kind::S3 => "s3",
            Kind::Azure => "azblob",
            Kind::Gcs => "gcs",
        };
        format!(
            "[preprocessor.imagegen.storage]\nscheme = \"{scheme}\"\nbucket = \"{BUCKET}\"\nregion = \"us-east-1\"\nendpoint = \"{}\"\nroot = \"books/test\"\n{extra}",
            self.endpoint()
        )
    }

    /// The environment a build needs to reach this server with credentials.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        let mut env = vec![
            // Never read a developer's own cloud configuration.
            ("AWS_CONFIG_FILE", "/nonexistent".to_owned()),
            ("AWS_SHARED_CREDENTIALS_FILE", "/nonexistent".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ];
        match self.kind {
            Kind::S3 => {
                env.push(("AWS_ACCESS_KEY_ID", "test".into()));
                env.push(("AWS_SECRET_ACCESS_KEY", "test-secret-value".into()));
            }
            Kind::Azure => env.push((
                "AZURE_STORAGE_CONNECTION_STRING",
                format!(
                    "DefaultEndpointsProtocol=http;AccountName={AZURE_ACCOUNT};AccountKey={AZURE_KEY};BlobEndpoint={};",
                    self.endpoint()
                ),
            )),
            Kind::Gcs => env.push(("STORAGE_EMULATOR_HOST", format!("127.0.0.1:{}", self.port))),
        }
        env
    }

    /// An operator on the test bucket, to look at what the builds wrote.
    pub(crate) fn operator(&self) -> opendal::Operator {
        static TRANSPORT: std::sync::Once = std::sync::Once::new();
        TRANSPORT.call_once(|| {
            let _ = rustls::crypto::ring::default_provider().install_default();
            opendal::HttpTransporter::install_default(
                opendal_http_transport_reqwest::ReqwestTransport::default(),
            );
        });
        let root = "books/test";
        match self.kind {
            Kind::S3 => opendal::Operator::new(
                opendal::services::S3::default()
                    .bucket(BUCKET)
                    .region("us-east-1")
                    .endpoint(&self.endpoint())
                    .root(root)
                    .access_key_id("test")
                    .secret_access_key("test-secret-value")
                    .disable_config_load()
                    .disable_ec2_metadata(),
            )
            .unwrap(),
            Kind::Azure => opendal::Operator::new(
                opendal::services::Azblob::default()
                    .container(BUCKET)
                    .endpoint(&self.endpoint())
                    .account_name(AZURE_ACCOUNT)
                    .account_key(AZURE_KEY)
                    .root(root),
            )
            .unwrap(),
            Kind::Gcs => opendal::Operator::new(
                opendal::services::Gcs::default()
                    .bucket(BUCKET)
                    .endpoint(&self.endpoint())
                    .root(root)
                    .skip_signature()
                    .disable_vm_metadata()
                    .disable_config_load(),
            )
            .unwrap(),
        }
    }

    /// Stops the server now.
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn wait_ready(&self) {
        let started = Instant::now();
        let url = match self.kind {
            Kind::S3 => format!("http://127.0.0.1:{}/moto-api/", self.port),
            Kind::Azure => format!("http://127.0.0.1:{}/", self.port),
            Kind::Gcs => format!("http://127.0.0.1:{}/storage/v1/b", self.port),
        };
        let agent = ureq::Agent::new_with_config(
            ureq::config::Config::builder()
                .http_status_as_error(false)
                .timeout_global(Some(Duration::from_secs(2)))
                .build(),
        );
        while agent.get(&url).call().is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(60),
                "the {:?} test server did not start",
                self.kind
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn create_bucket(&self) {
        let agent = ureq::agent();
        match self.kind {
            Kind::S3 => {
                agent
                    .put(&format!("http://127.0.0.1:{}/{BUCKET}", self.port))
                    .send_empty()
                    .expect("moto creates the bucket");
            }
            Kind::Gcs => {
                agent
                    .post(&format!("http://127.0.0.1:{}/storage/v1/b", self.port))
                    .header("content-type", "application/json")
                    .send(format!("{{\"name\":\"{BUCKET}\"}}"))
                    .expect("fake-gcs-server creates the bucket");
            }
            Kind::Azure => {
                // Azurite wants a SharedKey signature, and no content-type on an empty PUT.
                let output = Command::new("python3")
                    .args([
                        "-c",
                        AZURE_CREATE_CONTAINER,
                        &self.endpoint(),
                        BUCKET,
                        AZURE_KEY,
                    ])
                    .output()
                    .expect("python3 runs");
                assert!(
                    output.status.success(),
                    "Azurite did not create the container: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Creates a blob container with a SharedKey-signed request (Python's standard library only).
const AZURE_CREATE_CONTAINER: &str = r#"
import base64, hashlib, hmac, http.client, sys, urllib.parse
from email.utils import formatdate
endpoint, container, key = sys.argv[1:4]
account = "devstoreaccount1"
u = urllib.parse.urlsplit(endpoint.rstrip("/") + "/" + container)
headers = {"x-ms-date": formatdate(usegmt=True), "x-ms-version": "2021-08-06"}
to_sign = ("PUT\n" + "\n" * 11 + "".join(f"{k}:{v}\n" for k, v in sorted(headers.items()))
           + f"/{account}{u.path}\nrestype:container")
signature = hmac.new(base64.b64decode(key), to_sign.encode(), hashlib.sha256).digest()
headers["Authorization"] = f"SharedKey {account}:{base64.b64encode(signature).decode()}"
headers["Content-Length"] = "0"
connection = http.client.HTTPConnection(u.hostname, u.port, timeout=10)
connection.request("PUT", u.path + "?restype=container", headers=headers)
response = connection.getresponse()
if response.status not in (201, 409):
    sys.exit(f"{response.status} {response.read().decode()}")
"#;

pub(crate) fn tools_bin() -> PathBuf {
    let dir = std::env::var_os("IMAGEGEN_TEST_TOOLS")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            PathBuf::from(std::env::var_os("HOME").expect("HOME is set"))
                .join(".cache/mdbook-imagegen/test-tools")
        });
    dir.join("bin")
}

pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs an async OpenDAL call from a test.
pub(crate) fn block_on<F: std::future::Future>(future: F) -> F::Output {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
        .block_on(future)
}
