//! Generates man pages (one for `tcvault`, one per subcommand) from the clap definitions,
//! merged with the hand-written sections in `man/`, and shell completions.
//!
//! Output goes to `target/<profile>/man/` and `target/<profile>/completions/`, beside the
//! binary, so that `install` steps and tests find them without knowing cargo's hashed OUT_DIR.

use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use clap::CommandFactory;
use std::fmt::Write as _;

#[allow(dead_code)]
#[path = "src/cli/args/mod.rs"]
mod args;

#[allow(dead_code)]
#[path = "src/bin/tcvault-escrowd/args.rs"]
mod escrowd_args;

fn main() -> io::Result<()> {
    println!("cargo:rerun-if-changed=src/cli");
    println!("cargo:rerun-if-changed=src/bin/tcvault-escrowd/args.rs");
    println!("cargo:rerun-if-changed=man");
    third_party_volumes();
    let out = profile_dir()?;
    let man_dir = out.join("man");
    let comp_dir = out.join("completions");
    fs::create_dir_all(&man_dir)?;
    fs::create_dir_all(&comp_dir)?;

    let mut cmd = args::command();
    cmd.build();
    // `help` is a subcommand at run time but has no page of its own.
    let mut man_cmd = args::command().disable_help_subcommand(true);
    man_cmd.build();
    write_pages(&man_cmd, "tcvault", &man_dir, true)?;
    // The server has its own exit statuses (in its hand-written page), not tcvault's.
    let mut server = escrowd_args::Cli::command();
    server.build();
    write_pages(&server, "tcvault-escrowd", &man_dir, false)?;
    for (cmd, bin) in [(&mut cmd, "tcvault"), (&mut server, "tcvault-escrowd")] {
        for shell in [
            clap_complete::Shell::Bash,
            clap_complete::Shell::Zsh,
            clap_complete::Shell::Fish,
        ] {
            clap_complete::generate_to(shell, cmd, bin, &comp_dir)?;
        }
    }
    Ok(())
}

/// The page `name` of `cmd`, and one per subcommand at every level (`tcvault-escrow-search`,
/// `tcvault-escrowd-user-add`), as the SUBCOMMANDS sections name them.
fn write_pages(cmd: &clap::Command, name: &str, dir: &Path, common: bool) -> io::Result<()> {
    write_man(&named(cmd, name), name, dir, common)?;
    for sub in cmd
        .get_subcommands()
        .filter(|s| s.get_name() != "help" && !s.is_hide_set())
    {
        write_pages(sub, &format!("{name}-{}", sub.get_name()), dir, common)?;
    }
    Ok(())
}

/// `cmd` under the page name `name` (`tcvault-escrow-search`).
fn named(cmd: &clap::Command, name: &str) -> clap::Command {
    // clap wants a static name; a build script may leak a few bytes.
    cmd.clone()
        .name(&*Box::leak(name.to_owned().into_boxed_str()))
        .version(env!("CARGO_PKG_VERSION"))
}

/// The main page's SYNOPSIS: one line per command, and `-R`'s two operands (the generated one
/// would read `[-R ]`).
fn top_synopsis(cmd: &clap::Command) -> String {
    let mut s = String::from(".SH SYNOPSIS\n.nf\n");
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let _ = writeln!(
            s,
            "\\fBtcvault {}\\fR [\\fIOPTIONS\\fR]    see \\fBtcvault\\-{}\\fR(1)",
            sub.get_name(),
            sub.get_name()
        );
    }
    s.push_str(
        "\\fBtcvault \\-R\\fR \\fIADMIN TARGET\\fR [\\fIOPTIONS\\fR]    the shortcut of \
         \\fBtcvault restore \\-\\-admin\\fR \\fIADMIN TARGET\\fR\n\\fBtcvault\\fR \
         [\\fB\\-h\\fR|\\fB\\-\\-help\\fR] [\\fB\\-V\\fR|\\fB\\-\\-version\\fR]\n.fi\n",
    );
    s
}

/// `target/<profile>`: three levels above OUT_DIR (`target/<profile>/build/<pkg>-<hash>/out`).
fn profile_dir() -> io::Result<PathBuf> {
    let out = PathBuf::from(
        std::env::var_os("OUT_DIR").ok_or_else(|| io::Error::other("OUT_DIR unset"))?,
    );
    out.ancestors()
        .nth(3)
        .map(Path::to_path_buf)
        .ok_or_else(|| io::Error::other("unexpected OUT_DIR layout"))
}

/// Renders the generated sections, then the hand-written `man/<name>.roff` (EXIT STATUS,
/// EXAMPLES, SECURITY … in roff), then (`common`) tcvault's shared sections, then the version.
fn write_man(cmd: &clap::Command, name: &str, dir: &Path, common: bool) -> io::Result<()> {
    let man = clap_mangen::Man::new(cmd.clone())
        .title(name.to_uppercase())
        .section("1")
        .manual("tcvault manual")
        .source(format!("tcvault {}", env!("CARGO_PKG_VERSION")));
    let mut buf: Vec<u8> = Vec::new();
    man.render_title(&mut buf)?;
    man.render_name_section(&mut buf)?;
    if name == "tcvault" {
        buf.extend_from_slice(top_synopsis(cmd).as_bytes());
    } else {
        man.render_synopsis_section(&mut buf)?;
    }
    man.render_description_section(&mut buf)?;
    man.render_options_section(&mut buf)?;
    if cmd.has_subcommands() {
        man.render_subcommands_section(&mut buf)?;
    }
    let hand = Path::new("man").join(format!("{name}.roff"));
    if hand.exists() {
        buf.write_all(&fs::read(&hand)?)?;
        if !buf.ends_with(b"\n") {
            buf.push(b'\n');
        }
    }
    let common_part = Path::new("man").join("common.roff");
    if common && common_part.exists() {
        buf.write_all(&fs::read(&common_part)?)?;
    }
    man.render_version_section(&mut buf)?;
    fs::write(dir.join(format!("{name}.1")), buf)
}

/// Tests that read the third-party reference volumes (never copied into the project; see
/// `README.md`, "Test inputs") are compiled as ignored, with the reason, when the shared folder
/// is absent: the test report says "ignored", never "ok". Under `CI=true` a separate test fails
/// instead (`tests/format/reference_volumes.rs`). The folder is looked at when the build script runs
/// (a clean build, or a change under `src/cli` or `man/`).
fn third_party_volumes() {
    println!("cargo:rustc-check-cfg=cfg(shared_third_party)");
    let manifest = Path::new("../shared/testvolumes/veracrypt/third_party/manifest.json");
    if manifest.exists() {
        println!("cargo:rerun-if-changed={}", manifest.display());
        println!("cargo:rustc-cfg=shared_third_party");
    }
}
