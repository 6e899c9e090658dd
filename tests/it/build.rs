//! Real `mdbook build`s of the example book.

use std::io::{BufRead, BufReader};
use std::process::Stdio;
use std::time::{Duration, Instant};

use crate::support::fixtures::ok;
use crate::support::servers::free_port;
use crate::support::{TestBook, main_of};

#[test]
fn builds_figures_then_rebuilds_without_writing_anything() {
    let book = TestBook::example();
    book.build();

    let intro = book.read("book/index.html");
    assert!(
        intro.contains(
            "<figure class=\"imagegen\"><picture><source type=\"image/webp\" srcset=\"imagegen/"
        ),
        "{}",
        main_of(&intro)
    );
    assert!(intro.contains("alt=\"A lighthouse on a rocky cliff at dusk, its lamp lit\""));
    assert!(intro.contains("<figcaption>Figure 1: the lighthouse at Point Reyes</figcaption>"));
    // The widest variant of a 1536x1024 master for the default widths is 1024 wide.
    assert!(intro.contains("width=\"1024\" height=\"683\""));

    // Every URL in `src` and `srcset` resolves on each chapter's page, in `print.html` (where
    // mdBook rewrites `src` but not `srcset`) and in `index.html`.
    for (page, figures) in [
        ("book/index.html", 1),
        ("book/coast/lighthouses.html", 2),
        ("book/coast/harbours/tides.html", 1),
        ("book/reference.html", 1),
        ("book/print.html", 5),
    ] {
        let html = book.read(page);
        let main = main_of(&html);
        assert_eq!(
            main.matches("<figure class=\"imagegen\"").count(),
            figures,
            "{page}: {main}"
        );
        let urls = image_urls(main);
        assert!(urls.len() >= figures * 4, "{page}: {urls:?}");
        for url in urls {
            let published = book
                .root()
                .join("book")
                .join(page.trim_start_matches("book/"))
                .parent()
                .unwrap()
                .join(&url);
            assert!(published.is_file(), "{page}: {url} was not published");
        }
    }
    // Derived alt text drops style words; a caption-less directive has no figcaption.
    let tides = book.read("book/coast/harbours/tides.html");
    assert!(tides.contains("alt=\"Two small harbour lights at the end of stone piers at night, one red and one green\""), "{}", main_of(&tides));
    // Code that shows a directive is left as code.
    assert!(
        book.read("book/reference.html")
            .contains("This stays as code")
    );

    let before = book.files();
    std::thread::sleep(Duration::from_millis(20));
    let output = book.build();
    assert_eq!(
        book.files(),
        before,
        "the second build wrote under the book directory"
    );
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("generated"),
        "a warm build should be silent: {stderr}"
    );
}

/// Every URL in the `src` and `srcset` attributes of a page.
fn image_urls(html: &str) -> Vec<String> {
    let mut urls = Vec::new();
    for attribute in [" src=\"", " srcset=\""] {
        for rest in html.split(attribute).skip(1) {
            let value = &rest[..rest.find('"').unwrap()];
            for candidate in value.split(", ") {
                let url = candidate.split(' ').next().unwrap();
                if url.contains("imagegen/") {
                    urls.push(url.to_owned());
                }
            }
        }
    }
    urls
}

#[test]
fn placeholders_leave_nothing_to_commit() {
    let book = TestBook::example();
    book.build();
    let cache = book.root().join(".imagegen");
    assert!(!cache.join("records").exists());
    assert!(!cache.join("masters").exists());
    assert!(cache.join("local/records").is_dir());
    let gitignore = book.read(".imagegen/.gitignore");
    assert!(gitignore.contains("/local/") && gitignore.contains("/index.redb"));
}

#[test]
fn a_malformed_directive_fails_the_build_with_file_line_and_fix() {
    let book = TestBook::example();
    book.write(
        "src/coast/harbours/tides.md",
        "# Tides\n\n```image-prompt capton=\"x\"\nA tide table\n```\n",
    );
    let output = book.mdbook(&["build"]).output().unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(
            "src/coast/harbours/tides.md:3: unknown attribute `capton`; did you mean `caption`?"
        ),
        "{stderr}"
    );
}

#[test]
fn on_error_placeholder_shows_the_error_in_the_page() {
    let book = TestBook::example();
    book.write(
        "src/coast/harbours/tides.md",
        "# Tides\n\n```image-prompt size=\"huge\"\nA tide table\n```\n\nAfter.\n",
    );
    let output = book
        .mdbook(&["build"])
        .env("MDBOOK_PREPROCESSOR__IMAGEGEN__ON_ERROR", "\"placeholder\"")
        .output()
        .unwrap();
    let stderr = ok(&output);
    assert!(
        stderr.contains("src/coast/harbours/tides.md:3: `huge` is not a size"),
        "{stderr}"
    );
    let html = book.read("book/coast/harbours/tides.html");
    assert!(html.contains("imagegen-error"), "{}", main_of(&html));
    assert!(html.contains("<code>src/coast/harbours/tides.md:3</code>"));
    assert!(html.contains("<p>After.</p>"));
}

#[test]
fn two_builds_at_once_both_succeed_with_identical_output() {
    let book = TestBook::example();
    let mut first = book
        .mdbook(&["build", "-d", "out-a"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut second = book
        .mdbook(&["build", "-d", "out-b"])
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let a = first.wait().unwrap();
    let b = second.wait().unwrap();
    assert!(a.success() && b.success());
    for page in [
        "index.html",
        "coast/lighthouses.html",
        "coast/harbours/tides.html",
        "reference.html",
    ] {
        assert_eq!(
            book.read(&format!("out-a/{page}")),
            book.read(&format!("out-b/{page}")),
            "{page}"
        );
    }
    // And the cache they shared serves a third build without writing.
    book.build();
    let before = book.files();
    book.build();
    assert_eq!(book.files(), before);
}

#[test]
fn serve_settles_after_a_new_directive() {
    let book = TestBook::example();
    book.build();
    let port = free_port();
    let mut serve = book
        .mdbook(&["serve", "-n", "127.0.0.1", "-p", &port.to_string()])
        .stderr(Stdio::piped())
        .stdout(Stdio::null())
        .spawn()
        .unwrap();
    let stderr = serve.stderr.take().unwrap();
    let (lines, receiver) = std::sync::mpsc::channel::<String>();
    std::thread::spawn(move || {
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            if lines.send(line).is_err() {
                break;
            }
        }
    });
    let builds_within = |wait: Duration| {
        let deadline = Instant::now() + wait;
        let mut builds = 0;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match receiver.recv_timeout(left) {
                Ok(line) if line.contains("Book building has started") => builds += 1,
                Ok(_) => {}
                Err(_) => break,
            }
        }
        builds
    };
    assert!(
        builds_within(Duration::from_secs(5)) >= 1,
        "serve never built"
    );
    book.write(
        "src/reference.md",
        &format!(
            "{}\n```image-prompt\nA new picture of a foghorn\n```\n",
            book.read("src/reference.md")
        ),
    );
    let after_edit = builds_within(Duration::from_secs(5));
    let later = builds_within(Duration::from_secs(3));
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(
        (1..=2).contains(&after_edit),
        "{after_edit} builds after the edit"
    );
    assert_eq!(later, 0, "serve kept rebuilding");
}
