//! `doc-examples PLACE START [REPO]`: print the bash script that runs the `sh PLACE` examples of
//! README.md and docs/*.md (REPO, default: this checkout) from the directory START. The boot and
//! container tests run it where those examples belong (tests/src/docs.rs).

use nanobot_e2e::docs;
use std::path::PathBuf;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let place = args
        .first()
        .and_then(|p| docs::PLACES.into_iter().find(|x| x.name() == p));
    let (Some(place), Some(start)) = (place, args.get(1)) else {
        eprintln!("usage: doc-examples user|checkout|host|bare|container START [REPO]");
        std::process::exit(2);
    };
    let repo = args.get(2).map(PathBuf::from).unwrap_or_else(|| {
        PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .parent()
            .map(PathBuf::from)
            .unwrap_or_default()
    });
    print!("{}", docs::script(&docs::all(&repo), place, start));
}
