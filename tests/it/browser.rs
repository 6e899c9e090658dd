//! The built example book in a real browser: headless Chromium, driven over WebDriver by
//! ChromeDriver, loading pages from a static server on 127.0.0.1; axe-core (from npm, installed
//! by `scripts/install-test-servers`) checks every page's images for WCAG text alternatives.
//!
//! Chromium and ChromeDriver come from Debian's `chromium` and `chromium-driver` packages;
//! `scripts/install-tools` installs them, and this test does too when they are missing.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::TestBook;
use crate::support::books::toml;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Where every figure's image and the end of the chapter are, in page coordinates, once the
/// fonts are in.
const LAYOUT: &str = r#"
const [page, done] = arguments;
const measure = () => {
  if (!location.pathname.endsWith(page) || document.readyState === "loading") {
    return setTimeout(measure, 20);
  }
  const images = [...document.querySelectorAll("main figure.imagegen img")];
  const box = (element) => {
    const rect = element.getBoundingClientRect();
    return [rect.left + window.scrollX, rect.top + window.scrollY, rect.width, rect.height];
  };
  document.fonts.ready.then(() => done({
    loaded: images.filter((image) => image.complete && image.naturalWidth > 0).length,
    boxes: images.map(box).concat([box(document.querySelector("main"))]),
  }));
};
measure();
"#;

/// Waits until every figure's image has loaded (scrolling each into view, as they are lazy),
/// then reports what the browser chose.
const LOAD_ALL: &str = r#"
const done = arguments[arguments.length - 1];
const images = [...document.querySelectorAll("main figure.imagegen img")];
(async () => {
  for (const image of images) {
    image.scrollIntoView({ block: "center" });
    if (!image.complete) {
      await new Promise((resolve) => {
        image.addEventListener("load", resolve, { once: true });
        image.addEventListener("error", resolve, { once: true });
      });
    }
  }
  window.scrollTo(0, 0);
  done(images.map((image) => ({
    naturalWidth: image.naturalWidth,
    currentSrc: image.currentSrc,
    alt: image.alt,
  })));
})();
"#;

/// The axe-core rules about text alternatives of images, and about the ARIA figures use
/// (`aria-describedby` pointing at an element that exists, a decorative image's role).
const AXE_RULES: [&str; 6] = [
    "image-alt",
    "role-img-alt",
    "svg-img-alt",
    "presentation-role-conflict",
    "aria-valid-attr-value",
    "duplicate-id-aria",
];

/// Runs axe-core's rules (`arguments[0]`) on the page; reports each violation with its nodes.
const AXE_RUN: &str = r#"
const [rules, done] = arguments;
axe.run(document, { runOnly: { type: "rule", values: rules }, resultTypes: ["violations"] })
  .then((result) => done(result.violations.map((v) => ({ id: v.id, nodes: v.nodes.map((n) => n.html) }))))
  .catch((error) => done({ error: String(error) }));
"#;

/// Fails with every violation axe-core finds on the page about images' text alternatives.
fn assert_axe_clean(driver: &Driver, page: &str) {
    let axe = crate::support::servers::tools_bin().join("axe.min.js");
    let source = std::fs::read_to_string(&axe).unwrap_or_else(|_| {
        panic!(
            "`{}` is missing; run scripts/install-test-tools",
            axe.display()
        )
    });
    driver.execute_sync(&source);
    let violations = driver.execute_async_with(AXE_RUN, json!([AXE_RULES]));
    assert_eq!(violations, json!([]), "{page}: axe-core found violations");
}

#[test]
fn every_figure_loads_a_modern_format_with_alt_text_and_no_layout_shift() {
    ensure_chromium();
    let book = TestBook::example();
    book.edit("book.toml", |toml| {
        format!("{toml}\n[preprocessor.imagegen.output]\nformats = [\"avif\", \"webp\"]\n")
    });
    book.build();
    // Images arrive late, so the page is laid out before any of them.
    let server = StaticServer::start(book.root().join("book"), Duration::from_millis(1500));
    let driver = Driver::start();

    let pages = [
        ("index.html", 1),
        ("coast/lighthouses.html", 2),
        ("coast/harbours/tides.html", 1),
        ("reference.html", 1),
        ("print.html", 5),
    ];
    for (page, figures) in pages {
        driver.navigate(&format!("{}/{page}", server.url));
        let before = driver.execute_async_with(LAYOUT, json!([page]));
        assert_eq!(before["loaded"], 0, "{page}: images were not delayed");
        let report = driver.execute_async(LOAD_ALL);
        let images = report.as_array().unwrap();
        assert_eq!(images.len(), figures, "{page}: {report}");
        for image in images {
            assert!(
                image["naturalWidth"].as_u64().unwrap() > 0,
                "{page}: {image}"
            );
            let src = image["currentSrc"].as_str().unwrap();
            assert!(
                src.ends_with(".avif") || src.ends_with(".webp"),
                "{page}: the browser chose {src}"
            );
            assert!(
                !image["alt"].as_str().unwrap().is_empty(),
                "{page}: {image}"
            );
        }
        // Nothing moved when the images arrived: the space was reserved from the start.
        let after = driver.execute_async_with(LAYOUT, json!([page]));
        assert_eq!(after["loaded"].as_u64(), Some(figures as u64), "{page}");
        // Widths round heights differently (1024x683 and 750x500), so allow under a pixel.
        let boxes = |v: &Value| -> Vec<f64> {
            v["boxes"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|b| b.as_array().unwrap().iter().map(|n| n.as_f64().unwrap()))
                .collect()
        };
        let (was, is) = (boxes(&before), boxes(&after));
        assert_eq!(was.len(), is.len(), "{page}");
        assert!(
            was.iter().zip(&is).all(|(a, b)| (a - b).abs() < 1.0),
            "{page}: the layout shifted: {was:?} -> {is:?}"
        );
        assert_axe_clean(&driver, page);
    }

    // The screenshot in the README: `MDBOOK_IMAGEGEN_SCREENSHOT=docs/images/chapter.png`.
    if let Some(path) = std::env::var_os("MDBOOK_IMAGEGEN_SCREENSHOT") {
        driver.navigate(&format!("{}/coast/lighthouses.html", server.url));
        driver.execute_async(LOAD_ALL);
        let png = driver.screenshot();
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join(path);
        std::fs::write(path, png).unwrap();
    }
}

/// What a screen reader is given for each figure's image: its alt, its role, and the text of
/// the element its `aria-describedby` names.
const ACCESSIBLE: &str = r#"
const done = arguments[arguments.length - 1];
done([...document.querySelectorAll("main figure.imagegen img")].map((image) => {
  const described = image.getAttribute("aria-describedby");
  const target = described && document.getElementById(described);
  return {
    alt: image.getAttribute("alt"),
    role: image.getAttribute("role"),
    description: target ? target.textContent : null,
    details: !!image.closest("figure").querySelector("details summary"),
  };
}));
"#;

/// A book whose images come from a `command` program and whose alt text a `command` describer
/// writes (no key, no network): described figures carry a linked long description, a
/// decorative one is `role="presentation"`, and axe-core finds nothing wrong on any page.
#[cfg(unix)]
#[test]
fn described_and_decorative_figures_pass_axe() {
    ensure_chromium();
    let book = TestBook::example();
    let png = crate::support::fixtures::png(96, 64);
    std::fs::write(book.root().join("picture.png"), png).unwrap();
    book.write(
        "draw.sh",
        "#!/bin/sh\ncat >/dev/null\ncp picture.png \"$IMAGEGEN_OUTPUT\"\n",
    );
    book.write(
        "describe.sh",
        "#!/bin/sh\ncat >/dev/null\nprintf '%s' '{\"alt\": \"Harbour lights on two piers, one red, one green\", \"description\": \"Two stone piers reach into a dark harbour; a red light ends the left one and a green light the right.\"}'\n",
    );
    for script in ["draw.sh", "describe.sh"] {
        let path = book.root().join(script);
        let mut perms = std::fs::metadata(&path).unwrap().permissions();
        std::os::unix::fs::PermissionsExt::set_mode(&mut perms, 0o755);
        std::fs::set_permissions(&path, perms).unwrap();
    }
    book.write(
        "book.toml",
        &toml(
            "Lights of the Coast",
            r#"provider = "draw"
alt-text = "describe"

[preprocessor.imagegen.describe]
profile = "reader"

[preprocessor.imagegen.providers.draw]
kind = "command"
model = "draw"
command = ["./draw.sh"]

[preprocessor.imagegen.providers.reader]
kind = "command"
model = "reader"
command = ["./describe.sh"]

[preprocessor.imagegen.styles]
engraving = "black and white copperplate engraving, fine cross-hatching"
"#,
        ),
    );
    book.write(
        "src/coast/harbours/tides.md",
        "# Harbours and tides\n\n```image-prompt caption=\"Harbour lights\"\nTwo harbour lights on stone piers at night\n```\n\nA rule between sections:\n\n```image-prompt alt=\"\"\nA decorative wave ornament\n```\n",
    );
    book.build();
    let server = StaticServer::start(book.root().join("book"), Duration::ZERO);
    let driver = Driver::start();
    driver.navigate(&format!("{}/coast/harbours/tides.html", server.url));
    driver.execute_async(LOAD_ALL);
    let images = driver.execute_async(ACCESSIBLE);
    assert_eq!(
        images,
        json!([
            { "alt": "Harbour lights on two piers, one red, one green", "role": null,
              "description": "Two stone piers reach into a dark harbour; a red light ends the left one and a green light the right.",
              "details": true },
            { "alt": "", "role": "presentation", "description": null, "details": false },
        ])
    );
    for page in ["coast/harbours/tides.html", "print.html"] {
        driver.navigate(&format!("{}/{page}", server.url));
        driver.execute_async(LOAD_ALL);
        assert_axe_clean(&driver, page);
    }
    // The check can fail: an image stripped of its alt is an `image-alt` violation.
    driver
        .execute_sync("document.querySelector('main figure.imagegen img').removeAttribute('alt');");
    let violations = driver.execute_async_with(AXE_RUN, json!([AXE_RULES]));
    assert_eq!(violations[0]["id"], "image-alt", "{violations}");
}

/// Installs Debian's Chromium and ChromeDriver when missing.
fn ensure_chromium() {
    if Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file() {
        return;
    }
    let install = |args: &[&str]| {
        Command::new("apt-get")
            .args(args)
            .env("DEBIAN_FRONTEND", "noninteractive")
            .status()
            .is_ok_and(|s| s.success())
    };
    if !install(&["install", "-y", "-q", "chromium", "chromium-driver"]) {
        assert!(install(&["update", "-q"]), "apt-get update failed");
        assert!(
            install(&["install", "-y", "-q", "chromium", "chromium-driver"]),
            "cannot install chromium; run `scripts/install-tools`"
        );
    }
}

/// A static file server for a built book, on a free port of 127.0.0.1.
struct StaticServer {
    url: String,
}

impl StaticServer {
    /// Serves `root`; files under an `imagegen/` directory are sent after `image_delay`.
    fn start(root: PathBuf, image_delay: Duration) -> StaticServer {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let root = root.clone();
                std::thread::spawn(move || serve(&root, stream, image_delay));
            }
        });
        StaticServer { url }
    }
}

fn serve(root: &Path, mut stream: TcpStream, image_delay: Duration) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut request_line = String::new();
    if reader.read_line(&mut request_line).is_err() {
        return;
    }
    loop {
        let mut header = String::new();
        if reader.read_line(&mut header).unwrap_or(0) == 0 || header == "\r\n" {
            break;
        }
    }
    let path = request_line.split(' ').nth(1).unwrap_or("/");
    let path = path.split(['?', '#']).next().unwrap_or("/");
    let mut file = root.join(path.trim_start_matches('/'));
    if file.is_dir() {
        file = file.join("index.html");
    }
    let (status, body, kind) = match std::fs::read(&file) {
        Ok(body) if !path.contains("..") => ("200 OK", body, content_type(&file)),
        _ => ("404 Not Found", b"not found".to_vec(), "text/plain"),
    };
    if path.contains("/imagegen/") {
        std::thread::sleep(image_delay);
    }
    let head = format!(
        "HTTP/1.1 {status}\r\ncontent-type: {kind}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    );
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(&body);
}

fn content_type(path: &Path) -> &'static str {
    match path.extension().and_then(|e| e.to_str()).unwrap_or("") {
        "html" => "text/html; charset=utf-8",
        "css" => "text/css",
        "js" => "text/javascript",
        "svg" => "image/svg+xml",
        "avif" => "image/avif",
        "webp" => "image/webp",
        "jpg" => "image/jpeg",
        "png" => "image/png",
        "woff" => "font/woff",
        "woff2" => "font/woff2",
        "json" => "application/json",
        _ => "application/octet-stream",
    }
}

/// ChromeDriver with one headless Chromium session.
struct Driver {
    process: Child,
    base: String,
    session: String,
    _profile: tempfile::TempDir,
}

impl Driver {
    fn start() -> Driver {
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("chromedriver starts");
        let base = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        while TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                started.elapsed() < Duration::from_secs(20),
                "chromedriver did not start"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
        let profile = tempfile::tempdir().unwrap();
        let args = [
            "--headless=new".to_owned(),
            "--no-sandbox".to_owned(),
            "--disable-gpu".to_owned(),
            "--disable-quic".to_owned(),
            "--no-first-run".to_owned(),
            "--disable-background-networking".to_owned(),
            "--disable-component-update".to_owned(),
            "--disable-sync".to_owned(),
            "--window-size=1200,900".to_owned(),
            format!("--user-data-dir={}", profile.path().display()),
        ];
        let mut driver = Driver {
            process,
            base,
            session: String::new(),
            _profile: profile,
        };
        let created = driver.post(
            "/session",
            &json!({ "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "eager",
                "goog:chromeOptions": { "binary": CHROMIUM, "args": args }
            }}}),
        );
        driver.session = created["sessionId"].as_str().unwrap().to_owned();
        driver.post(
            &format!("/session/{}/timeouts", driver.session),
            &json!({ "script": 60_000, "pageLoad": 60_000 }),
        );
        driver
    }

    fn navigate(&self, url: &str) {
        self.post(
            &format!("/session/{}/url", self.session),
            &json!({ "url": url }),
        );
    }

    fn execute_sync(&self, script: &str) -> Value {
        self.post(
            &format!("/session/{}/execute/sync", self.session),
            &json!({ "script": script, "args": [] }),
        )
    }

    fn execute_sync_with(&self, script: &str, args: Value) -> Value {
        self.post(
            &format!("/session/{}/execute/sync", self.session),
            &json!({ "script": script, "args": args }),
        )
    }

    /// A Chrome DevTools Protocol command, through ChromeDriver.
    fn cdp(&self, cmd: &str, params: Value) -> Value {
        self.post(
            &format!("/session/{}/goog/cdp/execute", self.session),
            &json!({ "cmd": cmd, "params": params }),
        )
    }

    fn execute_async(&self, script: &str) -> Value {
        self.execute_async_with(script, json!([]))
    }

    fn execute_async_with(&self, script: &str, args: Value) -> Value {
        self.post(
            &format!("/session/{}/execute/async", self.session),
            &json!({ "script": script, "args": args }),
        )
    }

    fn screenshot(&self) -> Vec<u8> {
        use base64::Engine;
        let value = self.call(
            "GET",
            &format!("/session/{}/screenshot", self.session),
            None,
        );
        base64::engine::general_purpose::STANDARD
            .decode(value.as_str().unwrap())
            .unwrap()
    }

    fn post(&self, path: &str, body: &Value) -> Value {
        self.call("POST", path, Some(body))
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .timeout_global(Some(Duration::from_secs(120)))
            .build()
            .into();
        let url = format!("{}{path}", self.base);
        let mut response = match body {
            Some(body) => agent
                .post(&url)
                .header("content-type", "application/json")
                .send(body.to_string())
                .unwrap(),
            None => {
                assert_eq!(method, "GET");
                agent.get(&url).call().unwrap()
            }
        };
        let mut text = String::new();
        response
            .body_mut()
            .as_reader()
            .read_to_string(&mut text)
            .unwrap();
        let reply: Value = serde_json::from_str(&text).unwrap();
        assert!(
            response.status().is_success(),
            "{method} {path}: {}",
            reply["value"]
        );
        reply["value"].clone()
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let agent = ureq::agent();
            let _ = agent
                .delete(&format!("{}/session/{}", self.base, self.session))
                .call();
        }
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

/// What each figure of the page shows once its visible image has loaded (each scrolled into
/// view, as they are lazy): which of its pictures is displayed, that image's size, and every
/// image file the page downloaded, with the URLs of the images it did not show.
const THEMED: &str = r#"
const [page, done] = arguments;
const ready = () => location.pathname.endsWith(page) && document.readyState === "complete";
const wait = (resolve) => ready() ? resolve() : setTimeout(() => wait(resolve), 20);
new Promise(wait).then(() => report());
const report = () => {
const figures = [...document.querySelectorAll("main figure.imagegen")];
const shown = (element) => element && getComputedStyle(element).display !== "none";
const urls = (picture) => picture ? [...picture.querySelectorAll("source, img")].flatMap((e) =>
  [e.getAttribute("src"), ...(e.getAttribute("srcset") || "").split(",").map((s) => s.trim().split(" ")[0])]
).filter(Boolean).map((u) => new URL(u, location.href).href) : [];
(async () => {
  const out = [];
  for (const figure of figures) {
    const light = figure.querySelector("picture.imagegen-light");
    const dark = figure.querySelector("picture.imagegen-dark");
    const visible = shown(dark) ? dark : light;
    const image = visible.querySelector("img");
    image.scrollIntoView({ block: "center" });
    if (!image.complete) {
      await new Promise((resolve) => {
        image.addEventListener("load", resolve, { once: true });
        image.addEventListener("error", resolve, { once: true });
      });
    }
    const box = figure.getBoundingClientRect();
    out.push({
      light: shown(light), dark: shown(dark), loaded: image.naturalWidth,
      src: image.currentSrc, hidden: urls(visible === dark ? light : dark),
      box: [box.width, box.height],
    });
  }
  window.scrollTo(0, 0);
  const files = performance.getEntriesByType("resource").filter((e) => e.name.includes("/imagegen/"));
  done({ figures: out, downloaded: files.map((e) => e.name), bytes: files.reduce((s, e) => s + e.encodedBodySize, 0) });
})();
};
"#;

/// Clicks an element by its id.
const CLICK: &str = "document.getElementById(arguments[0]).click();";

/// A book with dark twins (the placeholder turns each light image over) in each of mdBook's
/// five themes: the right image shown, the other neither shown nor downloaded, axe-core
/// content; print shows the light images; the theme menu switches images with no layout
/// shift; without JavaScript the system's preference decides.
#[test]
fn dark_twins_follow_the_theme_are_never_downloaded_hidden_and_print_light() {
    ensure_chromium();
    let book = TestBook::example();
    book.edit("book.toml", |toml| {
        format!("{toml}\n[preprocessor.imagegen.dark]\nmode = \"edit\"\n")
    });
    book.build();
    let server = StaticServer::start(book.root().join("book"), Duration::from_millis(300));
    let driver = Driver::start();
    let page = format!("{}/coast/lighthouses.html", server.url);
    let themed = |theme: &str| {
        driver.navigate(&page);
        driver.execute_sync(&format!("localStorage.setItem('mdbook-theme', '{theme}');"));
        driver.navigate(&page);
        driver.execute_async_with(THEMED, json!(["lighthouses.html"]))
    };
    let mut measured = Vec::new();
    for theme in ["light", "rust", "coal", "navy", "ayu"] {
        let dark = matches!(theme, "coal" | "navy" | "ayu");
        let report = themed(theme);
        let figures = report["figures"].as_array().unwrap();
        assert_eq!(figures.len(), 2, "{theme}: {report}");
        let downloaded: Vec<&str> = report["downloaded"]
            .as_array()
            .unwrap()
            .iter()
            .map(|u| u.as_str().unwrap())
            .collect();
        for figure in figures {
            assert_eq!(figure["dark"], dark, "{theme}: {figure}");
            assert_eq!(figure["light"], !dark, "{theme}: {figure}");
            assert!(figure["loaded"].as_u64().unwrap() > 0, "{theme}: {figure}");
            for url in figure["hidden"].as_array().unwrap() {
                assert!(
                    !downloaded.contains(&url.as_str().unwrap()),
                    "{theme}: the hidden image {url} was downloaded"
                );
            }
        }
        measured.push(format!(
            "{theme}: {} files, {} bytes",
            downloaded.len(),
            report["bytes"]
        ));
        assert_axe_clean(&driver, &format!("{theme} lighthouses.html"));
    }
    eprintln!("downloaded per theme: {}", measured.join("; "));

    // Print shows the light images, whatever the theme: print.html (every chapter, each with
    // its style) in coal, printed.
    themed("coal");
    driver.navigate(&format!("{}/print.html", server.url));
    driver.cdp("Emulation.setEmulatedMedia", json!({ "media": "print" }));
    let report = driver.execute_async_with(THEMED, json!(["print.html"]));
    let figures = report["figures"].as_array().unwrap();
    assert_eq!(figures.len(), 5, "{report}");
    for figure in figures {
        assert_eq!(
            (&figure["light"], &figure["dark"]),
            (&json!(true), &json!(false)),
            "print: {figure}"
        );
    }
    driver.cdp("Emulation.setEmulatedMedia", json!({ "media": "" }));

    // The theme menu: from light to coal and back, the figures keep their boxes.
    let before = themed("light");
    for theme in ["coal", "light"] {
        driver.execute_sync_with(CLICK, json!(["mdbook-theme-toggle"]));
        driver.execute_sync_with(CLICK, json!([format!("mdbook-theme-{theme}")]));
        let after = driver.execute_async_with(THEMED, json!(["lighthouses.html"]));
        let dark = theme == "coal";
        for (was, is) in before["figures"]
            .as_array()
            .unwrap()
            .iter()
            .zip(after["figures"].as_array().unwrap())
        {
            assert_eq!(is["dark"], dark, "after choosing {theme}: {is}");
            assert_eq!(was["box"], is["box"], "the layout shifted choosing {theme}");
        }
    }

    // Without JavaScript (`html:not(.js)`), the system's preference decides.
    for (scheme, dark) in [("dark", true), ("light", false)] {
        driver.cdp(
            "Emulation.setEmulatedMedia",
            json!({ "features": [{ "name": "prefers-color-scheme", "value": scheme }] }),
        );
        driver.execute_sync("document.documentElement.className = 'light';");
        let report = driver.execute_async_with(THEMED, json!(["lighthouses.html"]));
        for figure in report["figures"].as_array().unwrap() {
            assert_eq!(figure["dark"], dark, "no JavaScript, {scheme}: {figure}");
        }
    }
    driver.cdp("Emulation.setEmulatedMedia", json!({ "features": [] }));

    // The screenshots in docs/dark-themes.md: `MDBOOK_IMAGEGEN_DARK_SCREENSHOTS=docs/images`.
    if let Some(dir) = std::env::var_os("MDBOOK_IMAGEGEN_DARK_SCREENSHOTS") {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join(dir);
        for theme in ["light", "coal"] {
            themed(theme);
            driver.execute_sync(
                "document.querySelector('main figure.imagegen').scrollIntoView({ block: 'center' });",
            );
            std::thread::sleep(Duration::from_millis(600));
            std::fs::write(
                dir.join(format!("dark-twin-{theme}.png")),
                driver.screenshot(),
            )
            .unwrap();
        }
    }
}
