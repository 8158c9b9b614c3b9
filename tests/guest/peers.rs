//! The peer oracle: volumes made by `tcvault create` (and changed by `change-password` and
//! `restore-header`), opened in the guest by Debian's cryptsetup and tcplay.
//!
//! Covered, each case with its master keys and the sha256 of its whole decrypted data area
//! compared: every cipher chain the guest kernel has (all but the Kuznyechik ones) with each
//! VeraCrypt PRF cryptsetup 2.6 has (SHA-512, SHA-256, Whirlpool; it has no BLAKE2s, Streebog
//! or Argon2id); the default iteration count (keys only: its open would cost a minute of
//! emulated PBKDF2); the TrueCrypt format with SHA-512, Whirlpool and RIPEMD-160 (also through
//! `tcplay -i`); an outer and its hidden volume; keyfiles alone and with a password; a long
//! UTF-8 password; a volume after `change-password` (new password and PRF) and one after
//! `restore-header` from a backup file. PIMs are small so that the emulated key derivation
//! stays quick.

use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::common::{run_json, run_ok, tcvault, temp_dir};
use crate::{ext4_image, guest, run_guest};

/// The chains the guest kernel has, by `tcvault create --cipher` name.
const KERNEL_CHAINS: [&str; 10] = [
    "aes",
    "serpent",
    "twofish",
    "camellia",
    "aes-twofish",
    "aes-twofish-serpent",
    "serpent-aes",
    "serpent-twofish-aes",
    "twofish-serpent",
    "camellia-serpent",
];

/// One volume as a peer should see it.
struct Case {
    /// Case name (also the password file's name on the guest disk).
    name: String,
    /// The volume file on the guest disk.
    file: String,
    /// VeraCrypt format (else TrueCrypt).
    veracrypt: bool,
    /// The PRF, by tcvault's `--prf` name (cryptsetup's `--hash` names are the same).
    prf: &'static str,
    pim: u32,
    password: Vec<u8>,
    /// Keyfile names on the guest disk.
    keyfiles: Vec<String>,
    /// The hidden volume of `file`.
    hidden: bool,
    /// Also decrypt it through the peer (else only its keys).
    open: bool,
    /// Also ask tcplay (TrueCrypt format only: tcplay 1.1 reads no other).
    tcplay: bool,
}

impl Case {
    fn new(name: &str, file: &str, prf: &'static str) -> Case {
        Case {
            name: name.to_owned(),
            file: file.to_owned(),
            veracrypt: true,
            prf,
            pim: 1,
            password: format!("peer-{name}-password").into_bytes(),
            keyfiles: Vec::new(),
            hidden: false,
            open: true,
            tcplay: false,
        }
    }

    /// tcvault's unlock options for this case, files in `dir`.
    fn unlock_args(&self, dir: &Path) -> Vec<String> {
        let mut args = vec![
            "--password-file".to_owned(),
            dir.join(format!("{}.pw", self.name)).display().to_string(),
            "--prf".to_owned(),
            self.prf.to_owned(),
        ];
        if self.veracrypt {
            args.extend(["--pim".to_owned(), self.pim.to_string()]);
        }
        for k in &self.keyfiles {
            args.extend(["-k".to_owned(), dir.join(k).display().to_string()]);
        }
        if self.hidden {
            args.push("--hidden".to_owned());
        }
        args
    }

    /// cryptsetup's options for this case (in the guest, from the disk's root).
    fn cryptsetup_options(&self) -> String {
        let mut o = format!("--hash {}", self.prf);
        if self.veracrypt {
            write!(o, " --veracrypt --veracrypt-pim {}", self.pim)
                .expect("a String takes every write");
        }
        if self.hidden {
            o.push_str(" --tcrypt-hidden");
        }
        for k in &self.keyfiles {
            write!(o, " --key-file {k}").expect("a String takes every write");
        }
        o
    }
}

/// What tcvault says of a case: the master keys as cryptsetup lists them (per cipher of the
/// chain, in tcvault's order: the cipher's key, then its XTS tweak key), the chain, and the
/// sha256 of the decrypted data area.
struct Expected {
    keys: String,
    chain: String,
    data: String,
}

fn expected(case: &Case, dir: &Path) -> Expected {
    let vol = dir.join(&case.file);
    let info: Value = run_json(
        tcvault()
            .args(["info", "--json", "--show-keys"])
            .args(case.unlock_args(dir))
            .arg(&vol),
    );
    assert_eq!(
        info["type"].as_str() == Some("hidden"),
        case.hidden,
        "{}: {info}",
        case.name
    );
    let primary = info["master_key_primary_hex"].as_str().expect("keys shown");
    let secondary = info["master_key_secondary_hex"]
        .as_str()
        .expect("keys shown");
    let ciphers = primary.len() / 64;
    let keys = (0..ciphers)
        .map(|i| format!("{}{}", &primary[i * 64..][..64], &secondary[i * 64..][..64]))
        .collect();
    let out = run_ok(
        tcvault()
            .arg("decrypt")
            .args(case.unlock_args(dir))
            .arg(&vol),
    );
    Expected {
        keys,
        chain: info["cipher"].as_str().expect("cipher").to_owned(),
        data: hex::encode(Sha256::digest(&out.stdout)),
    }
}

/// cryptsetup names a chain in the order its ciphers are applied to the data, lower case
/// (`AES-Twofish` is `twofish-aes`).
fn cryptsetup_chain(chain: &str) -> String {
    let mut parts: Vec<String> = chain.split('-').map(str::to_lowercase).collect();
    parts.reverse();
    parts.join("-")
}

fn create(dir: &Path, case: &Case, cipher: &str, extra: &[&str]) {
    run_ok(
        tcvault()
            .args(["create", "--size", "2M", "--cipher", cipher])
            .args(if case.veracrypt {
                vec![]
            } else {
                vec!["--format", "truecrypt"]
            })
            .args(case.unlock_args(dir))
            .args(extra)
            .arg(dir.join(&case.file)),
    );
}

fn write_password(dir: &Path, case: &Case) {
    fs::write(dir.join(format!("{}.pw", case.name)), &case.password)
        .expect("cannot write the guest disk's files");
}

/// Makes every case's volume in `dir`.
fn make_cases(dir: &Path) -> Vec<Case> {
    let mut cases = Vec::new();
    for chain in KERNEL_CHAINS {
        for prf in ["sha512", "sha256", "whirlpool"] {
            let name = format!("vc-{chain}-{prf}");
            let case = Case::new(&name, &format!("{name}.hc"), prf);
            write_password(dir, &case);
            create(dir, &case, chain, &[]);
            cases.push(case);
        }
    }
    // The default iteration count (PIM 0: 500,000 for SHA-512).
    let mut default = Case::new("vc-default-count", "vc-default-count.hc", "sha512");
    default.pim = 0;
    default.open = false;
    write_password(dir, &default);
    create(dir, &default, "aes", &[]);
    cases.push(default);
    // A larger PIM.
    let mut pim = Case::new("vc-pim7", "vc-pim7.hc", "sha256");
    pim.pim = 7;
    write_password(dir, &pim);
    create(dir, &pim, "serpent-twofish-aes", &[]);
    cases.push(pim);
    // TrueCrypt format.
    for (chain, prf) in [
        ("aes", "sha512"),
        ("serpent-twofish-aes", "whirlpool"),
        ("twofish", "ripemd160"),
        ("aes-twofish-serpent", "ripemd160"),
    ] {
        let name = format!("tc-{chain}-{prf}");
        let mut case = Case::new(&name, &format!("{name}.tc"), prf);
        case.veracrypt = false;
        case.tcplay = true;
        write_password(dir, &case);
        create(dir, &case, chain, &[]);
        cases.push(case);
    }
    // Keyfiles: alone, and with a password.
    fs::write(dir.join("kf1"), (0..64u8).collect::<Vec<u8>>())
        .expect("cannot write the guest disk's files");
    fs::write(dir.join("kf2"), b"a text keyfile\n").expect("cannot write the guest disk's files");
    let mut only = Case::new("vc-keyfile-only", "vc-keyfile-only.hc", "sha512");
    only.password = Vec::new();
    only.keyfiles = vec!["kf1".to_owned()];
    write_password(dir, &only);
    create(dir, &only, "aes", &[]);
    cases.push(only);
    let mut both = Case::new("vc-password-keyfiles", "vc-password-keyfiles.hc", "sha256");
    both.keyfiles = vec!["kf1".to_owned(), "kf2".to_owned()];
    write_password(dir, &both);
    create(dir, &both, "serpent", &[]);
    cases.push(both);
    // A long UTF-8 password.
    let mut utf8 = Case::new("vc-utf8", "vc-utf8.hc", "whirlpool");
    utf8.password = "Pässwörd-Ünïcødé-日本語-🔑-long-enough-to-fill-the-pool-0123456789"
        .as_bytes()
        .to_vec();
    write_password(dir, &utf8);
    create(dir, &utf8, "camellia", &[]);
    cases.push(utf8);
    // An outer volume and its hidden volume.
    let outer = Case::new("vc-outer", "vc-outer.hc", "sha512");
    write_password(dir, &outer);
    run_ok(
        tcvault()
            .args([
                "create",
                "--size",
                "4M",
                "--cipher",
                "aes-twofish",
                "--filesystem",
                "fat",
            ])
            .args(outer.unlock_args(dir))
            .arg(dir.join(&outer.file)),
    );
    let mut hidden = Case::new("vc-hidden", "vc-outer.hc", "sha256");
    hidden.hidden = true;
    write_password(dir, &hidden);
    let outer_pw = dir.join("vc-outer.pw");
    run_ok(
        tcvault()
            .args(["create", "--size", "1M", "--cipher", "serpent"])
            .args(hidden.unlock_args(dir))
            .arg("--outer-password-file")
            .arg(&outer_pw)
            .args(["--outer-pim", "1"])
            .arg(dir.join(&outer.file)),
    );
    cases.push(outer);
    cases.push(hidden);
    // After change-password: a new password and a new PRF.
    let mut changed = Case::new("vc-changed", "vc-changed.hc", "sha512");
    write_password(dir, &changed);
    create(dir, &changed, "twofish-serpent", &[]);
    let old_pw = dir.join("vc-changed.pw");
    let new_pw = dir.join("vc-changed.new");
    fs::write(&new_pw, b"the changed password").expect("cannot write the guest disk's files");
    run_ok(
        tcvault()
            .arg("change-password")
            .args(changed.unlock_args(dir))
            .arg("--new-password-file")
            .arg(&new_pw)
            .args(["--new-pim", "2", "--new-prf", "whirlpool"])
            .arg(dir.join(&changed.file)),
    );
    fs::remove_file(&old_pw).expect("cannot write the guest disk's files");
    changed.password = b"the changed password".to_vec();
    changed.prf = "whirlpool";
    changed.pim = 2;
    write_password(dir, &changed);
    fs::remove_file(&new_pw).expect("cannot write the guest disk's files");
    cases.push(changed);
    // After restore-header: the header backed up, the password changed, the backup restored;
    // the first password opens it again.
    let restored = Case::new("vc-restored", "vc-restored.hc", "sha256");
    write_password(dir, &restored);
    // (With a filesystem: restore-header checks that the backup's keys show one.)
    create(
        dir,
        &restored,
        "camellia-serpent",
        &["--filesystem", "ext4"],
    );
    let vol = dir.join(&restored.file);
    let backup = dir.join("vc-restored.backup");
    run_ok(
        tcvault()
            .arg("backup-header")
            .args(restored.unlock_args(dir))
            .arg(&vol)
            .arg(&backup),
    );
    let other_pw = dir.join("vc-restored.other");
    fs::write(&other_pw, b"a passing password").expect("cannot write the guest disk's files");
    run_ok(
        tcvault()
            .arg("change-password")
            .args(restored.unlock_args(dir))
            .arg("--new-password-file")
            .arg(&other_pw)
            .args(["--new-pim", "1"])
            .arg(&vol),
    );
    run_ok(
        tcvault()
            .arg("restore-header")
            .arg("--file")
            .arg(&backup)
            .arg("--keep-old-header")
            .arg(dir.join("vc-restored.old-headers"))
            .args(restored.unlock_args(dir))
            .arg(&vol),
    );
    fs::remove_file(&other_pw).expect("cannot write the guest disk's files");
    for file in [backup, dir.join("vc-restored.old-headers")] {
        fs::remove_file(file).expect("cannot write the guest disk's files");
    }
    cases.push(restored);
    cases
}

/// The guest's script: for each case, cryptsetup's dump (chain and keys), its open (sha256 of
/// the mapped device) and tcplay's view, as `peer NAME WHAT VALUE` lines.
fn guest_script(cases: &[Case]) -> String {
    let mut s = String::from(
        r#"# Made by tests/guest/peers.rs.
check() {
    name=$1 file=$2 opts=$3 open=$4 tcplay=$5
    # The password ends at a newline for both programs (tcplay needs one).
    { cat "$name.pw"; echo; } >/tmp/pw
    if cryptsetup tcryptDump $opts --dump-volume-key "$file" </tmp/pw >/tmp/dump 2>&1; then
        echo "peer $name chain $(sed -n 's/^Cipher chain:[[:space:]]*//p' /tmp/dump)"
        echo "peer $name keys $(sed -n '/^MK dump:/,$p' /tmp/dump | sed 's/^MK dump://' | tr -cd '0-9a-f')"
    else
        echo "peer $name dump-failed $(tr '\n' ' ' </tmp/dump)"
    fi
    if [ "$open" = 1 ]; then
        if cryptsetup open --type tcrypt $opts "$file" peer </tmp/pw >/tmp/open 2>&1; then
            echo "peer $name data $(sha256sum /dev/mapper/peer | cut -d' ' -f1)"
            cryptsetup close peer || echo "peer $name close-failed"
        else
            echo "peer $name open-failed $(tr '\n' ' ' </tmp/open)"
        fi
    fi
    if [ "$tcplay" = 1 ]; then
        loop=$(losetup -f)
        losetup "$loop" "$file"
        if tcplay -i -d "$loop" </tmp/pw >/tmp/tcplay 2>&1; then
            echo "peer $name tcplay-prf $(sed -n 's/.*PBKDF2 PRF:[[:space:]]*//p' /tmp/tcplay)"
            echo "peer $name tcplay $(sed -n 's/^Cipher:[[:space:]]*//p' /tmp/tcplay | tr -d ' ')"
        else
            echo "peer $name tcplay-failed $(tr '\n' ' ' </tmp/tcplay)"
        fi
        losetup -d "$loop"
    fi
}
"#,
    );
    for c in cases {
        writeln!(
            s,
            "check {} {} '{}' {} {}",
            c.name,
            c.file,
            c.cryptsetup_options(),
            u8::from(c.open),
            u8::from(c.tcplay)
        )
        .expect("a String takes every write");
    }
    s
}

#[test]
fn cryptsetup_and_tcplay_agree_on_every_volume_tcvault_writes() {
    let Some(script) = guest() else { return };
    // The outer and the restored volume get filesystems, made through the FUSE path.
    if !crate::common::can_mount() {
        return;
    }
    let dir = temp_dir();
    let disk_dir = dir.path().join("disk");
    fs::create_dir(&disk_dir).expect("cannot write the guest disk's files");
    let cases = make_cases(&disk_dir);
    let expected: Vec<Expected> = cases.iter().map(|c| expected(c, &disk_dir)).collect();
    fs::write(disk_dir.join("run.sh"), guest_script(&cases))
        .expect("cannot write the guest disk's files");
    let image = dir.path().join("disk.img");
    ext4_image(&disk_dir, &image);
    let console = run_guest(&script, &image);

    let said = |name: &str, what: &str| -> Option<String> {
        let prefix = format!("peer {name} {what}");
        console.lines().find_map(|l| {
            l.strip_prefix(&prefix)
                .filter(|rest| rest.is_empty() || rest.starts_with(' '))
                .map(|rest| rest.trim().to_owned())
        })
    };
    let mut failures = Vec::new();
    let (mut keys, mut data, mut tcplay) = (0, 0, 0);
    for (c, e) in cases.iter().zip(&expected) {
        for what in [
            "dump-failed",
            "open-failed",
            "close-failed",
            "tcplay-failed",
        ] {
            if let Some(why) = said(&c.name, what) {
                failures.push(format!("{}: {what}: {why}", c.name));
            }
        }
        match said(&c.name, "keys") {
            Some(k) if k == e.keys => keys += 1,
            Some(k) => failures.push(format!("{}: keys {k}, tcvault {}", c.name, e.keys)),
            None => failures.push(format!("{}: cryptsetup gave no keys", c.name)),
        }
        let chain = cryptsetup_chain(&e.chain);
        if said(&c.name, "chain").as_deref() != Some(chain.as_str()) {
            failures.push(format!(
                "{}: chain {:?}, expected {chain}",
                c.name,
                said(&c.name, "chain")
            ));
        }
        if c.open {
            match said(&c.name, "data") {
                Some(d) if d == e.data => data += 1,
                Some(d) => failures.push(format!("{}: data {d}, tcvault {}", c.name, e.data)),
                None => failures.push(format!("{}: cryptsetup did not open it", c.name)),
            }
        }
        if c.tcplay {
            // tcplay names the ciphers as they are applied, like cryptsetup, in upper case
            // with the key size and mode (`AES-256-XTS,TWOFISH-256-XTS` for `twofish-aes`),
            // and the PRF as `SHA512`, `whirlpool` or `RIPEMD160`.
            let ciphers = said(&c.name, "tcplay").map(|t| {
                t.to_lowercase()
                    .split(',')
                    .map(|c| c.trim_end_matches("-256-xts").to_owned())
                    .collect::<Vec<_>>()
                    .join("-")
            });
            let prf = said(&c.name, "tcplay-prf").map(|p| p.to_lowercase());
            if ciphers.as_deref() == Some(chain.as_str()) && prf.as_deref() == Some(c.prf) {
                tcplay += 1;
            } else {
                failures.push(format!(
                    "{}: tcplay said {ciphers:?} with {prf:?}, expected {chain} with {}",
                    c.name, c.prf
                ));
            }
        }
    }
    assert!(
        failures.is_empty(),
        "the peers disagree:\n{}\n\nguest console:\n{console}",
        failures.join("\n")
    );
    eprintln!(
        "peers agree on {} volumes: cryptsetup keys {keys}, cryptsetup data {data}, tcplay {tcplay}",
        cases.len()
    );
}
