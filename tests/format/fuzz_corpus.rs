//! The fuzz targets' corpora replayed as ordinary tests: every file under `fuzz/corpus/<target>/`
//! goes through the same check the fuzzer runs (`fuzz/src/`, included here), so a regression a
//! corpus input catches shows up in `cargo test` without the fuzzer. Also checks that every
//! target has a corpus and that the checked-in seeds are the ones `fuzz/src/seeds.rs` makes;
//! `TCVAULT_WRITE_FUZZ_SEEDS=1` writes them instead (`scripts/fuzz.sh --seeds`).

#[path = "../../fuzz/src/lib.rs"]
#[allow(dead_code)]
mod checks;

use std::path::{Path, PathBuf};

fn corpus(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(target)
}

fn replay(target: &str) {
    let (_, check) = checks::TARGETS
        .iter()
        .find(|(t, _)| *t == target)
        .expect("a known target");
    let mut files: Vec<PathBuf> = std::fs::read_dir(corpus(target))
        .unwrap_or_else(|e| panic!("{target}: no corpus folder: {e}"))
        .map(|e| e.expect("corpus entry").path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "{target}: empty corpus");
    for f in files {
        let data = std::fs::read(&f).expect("read corpus file");
        let r = std::panic::catch_unwind(|| check(&data));
        assert!(r.is_ok(), "{target}: {} fails its check", f.display());
    }
}

#[test]
fn seeds_are_checked_in() {
    let write = std::env::var_os("TCVAULT_WRITE_FUZZ_SEEDS").is_some();
    for (target, name, bytes) in checks::seeds::all() {
        let p = corpus(target).join(&name);
        if write {
            std::fs::create_dir_all(corpus(target)).expect("corpus folder");
            std::fs::write(&p, &bytes).expect("write seed");
        } else {
            let on_disk = std::fs::read(&p).unwrap_or_else(|e| {
                panic!(
                    "{}: missing ({e}); run scripts/fuzz.sh --seeds",
                    p.display()
                )
            });
            assert!(
                on_disk == bytes,
                "{} differs from fuzz/src/seeds.rs",
                p.display()
            );
        }
    }
}

#[test]
fn every_target_has_a_fuzz_target_file() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz/fuzz_targets");
    let mut files: Vec<String> = std::fs::read_dir(dir)
        .expect("fuzz_targets")
        .map(|e| {
            let p = e.expect("entry").path();
            p.file_stem().expect("name").to_string_lossy().into_owned()
        })
        .collect();
    files.sort();
    let mut known: Vec<String> = checks::TARGETS.iter().map(|(t, _)| t.to_string()).collect();
    known.sort();
    assert_eq!(
        files, known,
        "fuzz/fuzz_targets and checks::TARGETS disagree"
    );
}

#[test]
fn replay_header_parse() {
    replay("header_parse");
}

#[test]
fn replay_volume_open() {
    replay("volume_open");
}

#[test]
fn replay_backup_file_1k() {
    replay("backup_file_1k");
}

#[test]
fn replay_backup_file_128k() {
    replay("backup_file_128k");
}

#[test]
fn replay_escrow_packet() {
    replay("escrow_packet");
}

#[test]
fn replay_client_config() {
    replay("client_config");
}

#[test]
fn replay_server_config() {
    replay("server_config");
}

#[test]
fn replay_escrow_api() {
    replay("escrow_api");
}

#[test]
fn replay_keyfiles() {
    replay("keyfiles");
}

#[test]
fn replay_cli_write() {
    replay("cli_write");
}
