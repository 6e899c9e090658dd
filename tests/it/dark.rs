//! Dark twins with the real `mdbook`: the example book with `[dark]` (the keyless placeholder
//! turns the light image over), what `plan`, `list` and `stats` say of twins, a twin its
//! profile cannot make named at its line, and a twin that fails keeping the light image.

use serde_json::Value;

use crate::support::books::{lights, toml};
use crate::support::fixtures::{failed, ok};
use crate::support::{TestBook, main_of};

/// The example book with `[dark]` set to `table`.
fn dark_book(table: &str) -> TestBook {
    let book = TestBook::example();
    book.edit("book.toml", |toml| {
        format!("{toml}\n[preprocessor.imagegen.dark]\n{table}\n")
    });
    book
}

fn twins_of(rows: &[Value]) -> Vec<(&str, Option<&str>)> {
    rows.iter()
        .filter(|r| r["status"] != "error")
        .map(|r| (r["dark"].as_str().unwrap_or("-"), r["dark_key"].as_str()))
        .collect()
}

#[test]
fn every_figure_gets_a_dark_twin_shown_by_the_theme_and_a_warm_build_changes_nothing() {
    let book = dark_book("mode = \"edit\"");
    let planned = book.plan();
    // Before a build, each twin waits for its light image: drawn, its key not known yet.
    assert!(
        twins_of(&planned)
            .iter()
            .all(|(status, key)| *status == "draw" && key.is_none()),
        "{planned:?}"
    );
    let output = book.build();
    assert!(
        !String::from_utf8_lossy(&output.stderr).contains("WARN"),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );

    let page = book.read("book/coast/lighthouses.html");
    let main = main_of(&page);
    assert_eq!(main.matches("<style>").count(), 1, "one style per chapter");
    assert_eq!(main.matches("<figure class=\"imagegen").count(), 2);
    assert_eq!(
        main.matches("<picture class=\"imagegen-light\">").count(),
        2
    );
    assert_eq!(main.matches("<picture class=\"imagegen-dark\">").count(), 2);
    assert!(main.contains(
        "html.coal .imagegen-dark,html.navy .imagegen-dark,html.ayu .imagegen-dark{display:inline}"
    ));
    assert!(!main.contains("{{"));
    // Both images of a figure carry the same size.
    for figure in main.split("<figure").skip(1) {
        let sizes: Vec<&str> = figure
            .split(" width=\"")
            .skip(1)
            .map(|s| s.split(" loading").next().unwrap())
            .collect();
        assert_eq!(sizes.len(), 2, "{figure}");
        assert_eq!(sizes[0], sizes[1], "{figure}");
    }
    // The twin's files are beside the chapter, like the light image's.
    let dark_src = main
        .split("<picture class=\"imagegen-dark\">")
        .nth(1)
        .and_then(|s| s.split("<img src=\"").nth(1))
        .and_then(|s| s.split('"').next())
        .unwrap();
    assert!(
        book.root().join("book/coast").join(dark_src).is_file(),
        "{dark_src}"
    );

    // `plan` now knows each twin's key, cached, and the light images are cached too.
    let planned = book.plan();
    let twins = twins_of(&planned);
    assert!(
        twins
            .iter()
            .all(|(status, key)| *status == "cached" && key.is_some()),
        "{twins:?}"
    );
    assert!(planned.iter().all(|r| r["status"] != "draw"), "{planned:?}");

    // A warm build says nothing and changes no file.
    let before = book.files();
    let output = book.build();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        !stderr.contains("imagegen:") && !stderr.contains("WARN"),
        "{stderr}"
    );
    assert_eq!(before, book.files());

    // `list` names each twin with its light image; other renderers get the light image only.
    let listed: Vec<Value> =
        serde_json::from_slice(&book.imagegen(&["list", "--json"]).stdout).unwrap();
    let twins = listed.iter().filter(|i| i["dark_of"].is_string()).count();
    assert_eq!(twins, twins_of(&planned).len(), "{listed:?}");
    let stats = book.imagegen(&["stats", "--json"]);
    let stats: Value = serde_json::from_slice(&stats.stdout).unwrap();
    assert_eq!(stats["dark_twins"]["images"], twins);
}

#[test]
fn a_directive_chooses_its_twin_and_the_book_can_turn_them_off() {
    let book = dark_book("mode = \"off\"");
    book.edit("src/coast/lighthouses.md", |text| {
        text.replacen(
            "```image-prompt ",
            "```image-prompt dark=\"keep the lamp warm yellow\" ",
            1,
        )
    });
    let planned = book.plan();
    let with_twin: Vec<&Value> = planned.iter().filter(|r| r["dark"].is_string()).collect();
    assert_eq!(with_twin.len(), 1, "{planned:?}");
    assert_eq!(with_twin[0]["file"], "src/coast/lighthouses.md");
    book.build();
    let records = crate::support::fixtures::walk(&book.root().join(".imagegen"));
    let twin = records
        .iter()
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|r| r.contains("dark-of"))
        .expect("the twin's record");
    assert!(
        twin.contains("\"prompt\": \"keep the lamp warm yellow\""),
        "{twin}"
    );
    assert!(twin.contains("(the light image)"), "{twin}");
}

#[test]
fn dark_edit_on_a_profile_that_takes_no_image_fails_at_its_line_before_anything_is_sent() {
    let book = lights(
        "sd",
        "",
        &[(
            "sd",
            "kind = \"automatic1111\"\nmodel = \"sd-turbo\"\nbase-url = \"http://127.0.0.1:9\"",
        )],
    );
    book.edit("src/coast/lighthouses.md", |text| {
        text.replacen("```image-prompt ", "```image-prompt dark=\"edit\" ", 1)
    });
    let stderr = failed(&book.mdbook(&["build"]).output().unwrap());
    let line = stderr
        .lines()
        .find(|l| l.contains("src/coast/lighthouses.md:8:"))
        .unwrap_or_else(|| panic!("{stderr}"));
    assert!(line.contains("cannot take reference images"), "{line}");

    let book = dark_book("mode = \"dusk\"");
    let stderr = failed(&book.mdbook(&["build"]).output().unwrap());
    assert!(
        stderr.contains("preprocessor.imagegen.dark.mode"),
        "{stderr}"
    );
    assert!(stderr.contains("unknown value `dusk`"), "{stderr}");
}

/// The example book drawn by `script` (a `command` profile, `sh draw.sh`), with `settings` in
/// its table and `dark` as its `[dark]`.
#[cfg(unix)]
fn drawn_book(settings: &str, dark: &str, script: &str) -> TestBook {
    let book = TestBook::example();
    let table = format!(
        "provider = \"draw\"\n{settings}\n\n[preprocessor.imagegen.dark]\n{dark}\n\n[preprocessor.imagegen.providers.draw]\nkind = \"command\"\nmodel = \"draw\"\ncommand = [\"sh\", \"draw.sh\"]\n\n[preprocessor.imagegen.styles]\nengraving = \"black and white copperplate engraving\"\n"
    );
    book.write("book.toml", &toml("Lights of the Coast", &table));
    book.write("draw.sh", script);
    book
}

/// A program that draws light images and fails every dark twin (its prompt carries the
/// instruction).
#[cfg(unix)]
const DRAW: &str = "#!/bin/sh\ncat >/dev/null\ncase \"$IMAGEGEN_PROMPT\" in *'dark ground'*) echo 'no dark today' >&2; exit 3;; esac\ncp picture.png \"$IMAGEGEN_OUTPUT\"\n";

#[cfg(unix)]
#[test]
fn a_twin_that_fails_follows_on_error_and_never_hides_the_light_image() {
    let book = drawn_book(
        "retries = 0\non-error = \"placeholder\"",
        "mode = \"prompt\"\ninstruction = \"dark ground\"",
        DRAW,
    );
    std::fs::write(
        book.root().join("picture.png"),
        crate::support::fixtures::png(96, 64),
    )
    .unwrap();
    let output = book.build();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("its dark twin was not made"), "{stderr}");
    assert!(stderr.contains("no dark today"), "{stderr}");
    let main = book.read("book/coast/lighthouses.html");
    let main = main_of(&main);
    assert_eq!(
        main.matches("<figure class=\"imagegen\"").count(),
        2,
        "{main}"
    );
    assert!(!main.contains("imagegen-dark") && !main.contains("imagegen-error"));

    book.edit("book.toml", |toml| {
        toml.replace("on-error = \"placeholder\"", "on-error = \"fail\"")
    });
    let stderr = failed(&book.mdbook(&["build"]).output().unwrap());
    assert!(stderr.contains("its dark twin was not made"), "{stderr}");
    ok(&book.imagegen(&["plan"]));
}

/// A program whose every call gives another image (`pictureN.png` for its Nth call).
#[cfg(unix)]
const EVERY_CALL_ANOTHER: &str = "#!/bin/sh\ncat >/dev/null\nn=$(cat n 2>/dev/null || echo 0)\necho $((n + 1)) > n\ncp picture$n.png \"$IMAGEGEN_OUTPUT\"\n";

#[cfg(unix)]
#[test]
fn regenerating_a_figure_makes_its_twin_again_and_gc_drops_the_old_twin() {
    let book = drawn_book("max-concurrency = 1", "mode = \"edit\"", EVERY_CALL_ANOTHER);
    for n in 0..20 {
        let png = crate::support::fixtures::png(96, 40 + n);
        std::fs::write(book.root().join(format!("picture{n}.png")), png).unwrap();
    }
    book.build();
    let twins = |book: &TestBook| -> Vec<String> {
        let listed: Vec<Value> =
            serde_json::from_slice(&book.imagegen(&["list", "--json"]).stdout).unwrap();
        listed
            .iter()
            .filter(|i| i["dark_of"].is_string())
            .map(|i| i["key"].as_str().unwrap().to_owned())
            .collect()
    };
    let before = twins(&book);
    let keys = |book: &TestBook| -> Vec<String> {
        book.plan()
            .iter()
            .filter(|r| r["file"] == "src/coast/lighthouses.md")
            .map(|r| r["dark_key"].as_str().unwrap().to_owned())
            .collect()
    };
    let old = keys(&book);
    assert_eq!(old.len(), 2);
    ok(&book.imagegen(&["regenerate", "src/coast/lighthouses.md"]));
    let new = keys(&book);
    assert!(new.iter().all(|k| !old.contains(k)), "{old:?} {new:?}");
    assert_eq!(twins(&book).len(), before.len() + 2);
    ok(&book.imagegen(&["gc"]));
    let after = twins(&book);
    assert_eq!(after.len(), before.len());
    assert!(old.iter().all(|k| !after.contains(k)), "{after:?}");

    // A twin's key alone: that twin is made again, and nothing else.
    let made = |book: &TestBook| -> Vec<(String, String)> {
        let listed: Vec<Value> =
            serde_json::from_slice(&book.imagegen(&["list", "--json"]).stdout).unwrap();
        let mut made: Vec<(String, String)> = listed
            .iter()
            .map(|i| {
                (
                    i["key"].as_str().unwrap().to_owned(),
                    i["created_at"].as_str().unwrap().to_owned(),
                )
            })
            .collect();
        made.sort();
        made
    };
    let was = made(&book);
    ok(&book.imagegen(&["regenerate", &new[0][..12]]));
    let is = made(&book);
    let changed: Vec<&String> = (was.iter().zip(&is))
        .filter(|(a, b)| a != b)
        .map(|(a, _)| &a.0)
        .collect();
    assert_eq!(changed, [&new[0]], "{was:?} {is:?}");
}

#[cfg(unix)]
#[test]
fn twins_go_through_the_remote_cache_and_a_teammate_pays_for_none() {
    let shared = tempfile::tempdir().unwrap();
    let storage = format!(
        "\n[preprocessor.imagegen.storage]\nscheme = \"fs\"\nroot = \"{}\"\n",
        shared.path().display()
    );
    // One call at a time: the program counts its calls in a file.
    let a = drawn_book(
        "retries = 0\nmax-concurrency = 1",
        "mode = \"edit\"",
        EVERY_CALL_ANOTHER,
    );
    a.edit("book.toml", |toml| format!("{toml}{storage}"));
    for n in 0..20 {
        let png = crate::support::fixtures::png(96, 40 + n);
        std::fs::write(a.root().join(format!("picture{n}.png")), png).unwrap();
    }
    a.build();
    // A teammate whose provider cannot draw: every image and every twin comes from the store.
    let refuse = "#!/bin/sh\ncat >/dev/null\necho 'no provider here' >&2\nexit 1\n";
    let b = drawn_book("retries = 0", "mode = \"edit\"", refuse);
    b.edit("book.toml", |toml| format!("{toml}{storage}"));
    let output = b.build();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!stderr.contains("no provider here"), "{stderr}");
    let page = |book: &TestBook| main_of(&book.read("book/coast/lighthouses.html")).to_owned();
    assert_eq!(page(&a), page(&b));
    assert_eq!(
        page(&b)
            .matches("<picture class=\"imagegen-dark\">")
            .count(),
        2
    );
}
