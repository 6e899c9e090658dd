//! Renders an SVG file for `scripts/bench svg` and prints how long it took, in milliseconds.
//!
//! `svg_render bounded WIDTH FILE` does what a build does with a master (sanitize, then render
//! under the bound, refusing what would take too long); `svg_render raw WIDTH FILE` renders the
//! same file with resvg and no bound, as the build did before the bound (the script kills it
//! after its time limit).

use std::io::Write as _;
use std::time::Instant;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [mode, width, file] = &args[..] else {
        let _ = writeln!(
            std::io::stderr(),
            "usage: svg_render bounded|raw WIDTH FILE"
        );
        std::process::exit(2);
    };
    let width: u32 = width.parse().expect("a width");
    let bytes = std::fs::read(file).expect("a readable file");
    let started = Instant::now();
    let verdict = match mode.as_str() {
        "bounded" => mdbook_imagegen::bench_svg_master(&bytes, width).map(|_| ()),
        "raw" => raw(&bytes, width),
        _ => panic!("mode is bounded or raw"),
    };
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    let mut stdout = std::io::stdout().lock();
    let line = match verdict {
        Ok(()) => format!("{ms:.1} ok"),
        Err(why) => format!("{ms:.1} refused: {why}"),
    };
    writeln!(stdout, "{line}").expect("stdout is writable");
}

fn raw(svg: &[u8], width: u32) -> Result<(), String> {
    let options = resvg::usvg::Options::default();
    let tree = resvg::usvg::Tree::from_data(svg, &options).map_err(|e| e.to_string())?;
    let size = tree.size();
    let scale = width as f32 / size.width();
    let height = ((size.height() * scale).round() as u32).max(1);
    let mut pixmap = resvg::tiny_skia::Pixmap::new(width, height).ok_or("no pixmap")?;
    resvg::render(
        &tree,
        resvg::tiny_skia::Transform::from_scale(scale, scale),
        &mut pixmap.as_mut(),
    );
    Ok(())
}
