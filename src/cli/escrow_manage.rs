//! `tcvault escrow …`: the authority key pair (`keygen`, in [`super::escrow`]) and the escrow
//! server's entries as users and admins see them: `search`, `show`, `request-deletion`,
//! `deletions`, `approve`, `reject`, `export`, `import`. Each logs in through the client
//! configuration (credentials file, `--login`/`--password-file`, or prompts) and prints a
//! table, or with `--json` the server's answer (the types of `tcvault::escrow::wire`) on
//! standard output.

use std::path::Path;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use serde::Serialize;
use tcvault::escrow::client::config::ClientConfig;
use tcvault::escrow::client::http::{ClientError, EscrowClient, Login};
use tcvault::escrow::client::readable_salts;
use tcvault::escrow::wire::{DeletionStatus, Entry, SearchParams};
use tcvault::secret::{SecretBytes, SecretText};
use tcvault::volume::Host;
use tcvault::volume::write;

use super::args::{
    EscrowCmdArgs, EscrowCommand, EscrowDecideArgs, EscrowExportArgs, EscrowImportArgs,
    EscrowLoginArgs, EscrowRequestDeletionArgs, EscrowSearchArgs, EscrowShowArgs,
};
use super::escrow::{keygen, login_from_file, secret_from_file};
use super::exit::{BAD_INPUT, CliError, FAILED, USAGE, WRONG_CREDENTIALS};
use super::prompt::ask_line;
use super::unlock::prompt_secret;

/// `tcvault escrow …`.
pub fn command(a: &EscrowCmdArgs) -> Result<(), CliError> {
    match &a.command {
        EscrowCommand::Keygen(k) => keygen(k),
        EscrowCommand::Search(s) => search(s),
        EscrowCommand::Show(s) => show(s),
        EscrowCommand::RequestDeletion(r) => request_deletion(r),
        EscrowCommand::Deletions(d) => deletions(&d.login),
        EscrowCommand::Approve(d) => decide(d, true),
        EscrowCommand::Reject(d) => decide(d, false),
        EscrowCommand::FetchRequests(d) => fetch_requests(&d.login),
        EscrowCommand::ApproveFetch(d) => decide_fetch(d, true),
        EscrowCommand::RejectFetch(d) => decide_fetch(d, false),
        EscrowCommand::Export(e) => export(e),
        EscrowCommand::Import(i) => import(i),
    }
}

/// The exit code of a server's refusal: 3 wrong credentials (or bundle password); 4 a request the server found
/// malformed or about nothing (400, 404, 409, 413); 1 otherwise (not allowed, throttled,
/// unreachable, a server error).
fn server_err(e: ClientError) -> CliError {
    let (code, hint) = match &e {
        ClientError::Refused { status: 401, .. } => (WRONG_CREDENTIALS, None),
        ClientError::Refused { code, .. } if code == "bundle_open" => (WRONG_CREDENTIALS, None),
        ClientError::Refused { status: 403, .. } => (
            FAILED,
            Some(
                "this needs an escrow admin (or the export/import right) calling from a network \
                 the server's ADMIN_SUBNET_MASK allows",
            ),
        ),
        ClientError::Refused {
            status: 400 | 404 | 409 | 413,
            ..
        } => (BAD_INPUT, None),
        _ => (FAILED, None),
    };
    let c = CliError::new(e, code);
    match hint {
        Some(h) => c.hint(h),
        None => c,
    }
}

/// The client of the configured server and the login to use on it.
fn connect(a: &EscrowLoginArgs) -> Result<(EscrowClient, Login), CliError> {
    let cfg = ClientConfig::discover(a.escrow_config.as_deref())
        .map_err(|e| CliError::new(e, BAD_INPUT))?
        .ok_or_else(|| {
            CliError::msg("key escrow is not configured", USAGE)
                .hint("give --escrow-config FILE or write ~/.config/tcvault/escrow.xml")
        })?;
    let login = match &a.escrow_credentials {
        Some(f) => login_from_file(f).map_err(|m| CliError::msg(m, BAD_INPUT))?,
        None => {
            let user = match &a.login {
                Some(u) => u.clone(),
                None => ask_line("Escrow network user name: ")
                    .map_err(|e| {
                        CliError::msg(format!("cannot read the user name: {e}"), BAD_INPUT)
                    })?
                    .trim()
                    .to_owned(),
            };
            if user.is_empty() {
                return Err(CliError::msg("no network user name given", USAGE)
                    .hint("give --login NAME or --escrow-credentials FILE"));
            }
            let password = match &a.login_password_file {
                Some(f) => secret_from_file(f, "password file")?,
                None => prompt_secret(&format!("Escrow network password of {user}: "))?,
            };
            Login::new(
                user,
                SecretText::from_secret(password)
                    .ok_or_else(|| CliError::msg("the password is not UTF-8", BAD_INPUT))?,
            )
        }
    };
    let client = EscrowClient::new(&cfg).map_err(server_err)?;
    Ok((client, login))
}

/// `value` as pretty JSON on standard output.
fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::msg(format!("cannot render JSON: {e}"), FAILED))?;
    outln!("{text}");
    Ok(())
}

fn meta_str<'a>(e: &'a Entry, key: &str) -> &'a str {
    e.metadata.get(key).and_then(|v| v.as_str()).unwrap_or("?")
}

fn header_kind(e: &Entry) -> &'static str {
    if e.metadata
        .get("hidden")
        .and_then(serde_json::Value::as_bool)
        == Some(true)
    {
        "hidden"
    } else {
        "normal"
    }
}

fn print_table(entries: &[Entry]) {
    if entries.is_empty() {
        errln!("No escrow entry.");
        return;
    }
    outln!(
        "{:>8}  {:<20}  {:<16}  {:<10}  {:<6}  cipher",
        "number",
        "escrowed",
        "user",
        "format",
        "header"
    );
    for e in entries {
        outln!(
            "{:>8}  {:<20}  {:<16}  {:<10}  {:<6}  {}",
            e.escrow_number,
            e.created,
            e.user,
            meta_str(e, "format"),
            header_kind(e),
            meta_str(e, "chain"),
        );
    }
}

fn search(a: &EscrowSearchArgs) -> Result<(), CliError> {
    let salts: Vec<String> = match &a.volume {
        Some(v) => readable_salts(&Host::open(v)?)?
            .iter()
            .map(hex::encode)
            .collect(),
        None => Vec::new(),
    };
    let (client, login) = connect(&a.login)?;
    let entries = if a.mine {
        client.own_entries(&login).map_err(server_err)?
    } else {
        let base = SearchParams {
            fingerprint: a.fingerprint.clone(),
            user: a.user.clone(),
            from: a.from.clone(),
            to: a.to.clone(),
            limit: a.limit.map(|n| n.to_string()),
            ..SearchParams::default()
        };
        if a.volume.is_some() {
            // One search per salt the volume shows; each entry once.
            let mut all: Vec<Entry> = Vec::new();
            for s in salts {
                let q = SearchParams {
                    salt: Some(s),
                    ..base.clone()
                };
                for e in client.search(&login, &q).map_err(server_err)? {
                    if !all.iter().any(|x| x.escrow_number == e.escrow_number) {
                        all.push(e);
                    }
                }
            }
            all
        } else {
            let q = SearchParams {
                salt: a.salt.clone(),
                ..base
            };
            client.search(&login, &q).map_err(server_err)?
        }
    };
    if a.login.json {
        return print_json(&entries);
    }
    print_table(&entries);
    Ok(())
}

fn show(a: &EscrowShowArgs) -> Result<(), CliError> {
    let (client, login) = connect(&a.login)?;
    let q = SearchParams {
        number: Some(a.number.to_string()),
        ..SearchParams::default()
    };
    // An admin's search; a user sees their own deposits.
    let found = match client.search(&login, &q) {
        Ok(found) => found,
        Err(ClientError::Refused { status: 403, .. }) => client
            .own_entries(&login)
            .map_err(server_err)?
            .into_iter()
            .filter(|e| e.escrow_number == a.number)
            .collect(),
        Err(e) => return Err(server_err(e)),
    };
    let Some(e) = found.into_iter().find(|e| e.escrow_number == a.number) else {
        return Err(CliError::msg(
            format!("no escrow entry {} (that you may see)", a.number),
            BAD_INPUT,
        ));
    };
    if a.login.json {
        return print_json(&e);
    }
    outln!("escrow number:         {}", e.escrow_number);
    outln!("escrowed:              {} by {}", e.created, e.user);
    outln!(
        "header:                {} {} {}, PRF {}",
        meta_str(&e, "format"),
        header_kind(&e),
        meta_str(&e, "chain"),
        meta_str(&e, "prf")
    );
    outln!("volume fingerprint:    {}", e.volume_fingerprint);
    outln!("authority key:         {}", e.authority_fingerprint);
    outln!("origin:                {}", e.origin);
    outln!(
        "recorded salts:        {} (a search hint only)",
        e.salts.len()
    );
    for s in &e.salts {
        outln!("  {s}");
    }
    Ok(())
}

fn print_status(s: &DeletionStatus, json: bool) -> Result<(), CliError> {
    if json {
        return print_json(s);
    }
    outln!(
        "Deletion request {} for escrow entry {}: {}{}.",
        s.request_id,
        s.escrow_number,
        s.status.as_str(),
        if s.deleted {
            "; the entry is deleted"
        } else {
            ""
        }
    );
    Ok(())
}

fn request_deletion(a: &EscrowRequestDeletionArgs) -> Result<(), CliError> {
    let (client, login) = connect(&a.login)?;
    let s = client
        .request_deletion(&login, a.number, &a.reason)
        .map_err(server_err)?;
    print_status(&s, a.login.json)?;
    if !a.login.json {
        errln!(
            "A second escrow admin approves it with `tcvault escrow approve {}`.",
            s.request_id
        );
    }
    Ok(())
}

fn deletions(a: &EscrowLoginArgs) -> Result<(), CliError> {
    let (client, login) = connect(a)?;
    let list = client.pending_deletions(&login).map_err(server_err)?;
    if a.json {
        return print_json(&list);
    }
    let rows: Vec<_> = list
        .requests
        .iter()
        .map(|r| {
            (
                r.request_id,
                r.escrow_number,
                &r.requested,
                &r.requested_by,
                &r.reason,
            )
        })
        .collect();
    print_requests("deletion", &rows);
    Ok(())
}

/// A table of pending requests (id, entry, when, by whom, why), or that there are none.
fn print_requests(what: &str, rows: &[(i64, i64, &String, &String, &String)]) {
    if rows.is_empty() {
        errln!("No pending {what} request.");
        return;
    }
    outln!(
        "{:>6}  {:>8}  {:<20}  {:<16}  reason",
        "id",
        "number",
        "requested",
        "by"
    );
    for (id, number, requested, by, reason) in rows {
        outln!("{id:>6}  {number:>8}  {requested:<20}  {by:<16}  {reason}");
    }
}

fn decide(a: &EscrowDecideArgs, approve: bool) -> Result<(), CliError> {
    let (client, login) = connect(&a.login)?;
    let s = client
        .decide_deletion(&login, a.id, approve)
        .map_err(server_err)?;
    print_status(&s, a.login.json)
}

fn fetch_requests(a: &EscrowLoginArgs) -> Result<(), CliError> {
    let (client, login) = connect(a)?;
    let list = client.pending_fetches(&login).map_err(server_err)?;
    if a.json {
        return print_json(&list);
    }
    let rows: Vec<_> = list
        .requests
        .iter()
        .map(|r| {
            (
                r.request_id,
                r.escrow_number,
                &r.requested,
                &r.requested_by,
                &r.reason,
            )
        })
        .collect();
    print_requests("fetch", &rows);
    Ok(())
}

fn decide_fetch(a: &EscrowDecideArgs, approve: bool) -> Result<(), CliError> {
    let (client, login) = connect(&a.login)?;
    let s = client
        .decide_fetch(&login, a.id, approve)
        .map_err(server_err)?;
    if a.login.json {
        return print_json(&s);
    }
    noteln!(
        "Fetch request {} for entry {} is {}.",
        s.request_id,
        s.escrow_number,
        s.status.as_str()
    );
    Ok(())
}

/// The bundle password: from a file, or asked (twice when `confirm`).
fn bundle_password(file: Option<&Path>, confirm: bool) -> Result<SecretText, CliError> {
    let pass: SecretBytes = match file {
        Some(f) => secret_from_file(f, "bundle password file")?,
        None => {
            let a = prompt_secret("Bundle password: ")?;
            if confirm {
                let b = prompt_secret("Repeat it: ")?;
                if a != b {
                    return Err(CliError::msg("the two passwords differ", BAD_INPUT));
                }
            }
            a
        }
    };
    SecretText::from_secret(pass)
        .ok_or_else(|| CliError::msg("the bundle password is not UTF-8", BAD_INPUT))
}

fn export(a: &EscrowExportArgs) -> Result<(), CliError> {
    if a.output.exists() && !a.force {
        return Err(
            CliError::msg(format!("{} exists", a.output.display()), BAD_INPUT)
                .hint("add --force to replace it"),
        );
    }
    let password = bundle_password(a.bundle_password_file.as_deref(), true)?;
    let (client, login) = connect(&a.login)?;
    let answer = client
        .export(&login, a.numbers.clone(), password)
        .map_err(server_err)?;
    let bytes = B64
        .decode(answer.bundle.as_bytes())
        .map_err(|e| CliError::msg(format!("the server's bundle is not base64: {e}"), FAILED))?;
    write::write_backup_file(&a.output, &bytes, a.force)?;
    if a.login.json {
        return print_json(&serde_json::json!({
            "file": a.output,
            "count": answer.count,
        }));
    }
    errln!(
        "Exported {} escrow entr{} to {} (sealed with the bundle password).",
        answer.count,
        if answer.count == 1 { "y" } else { "ies" },
        a.output.display()
    );
    Ok(())
}

/// Largest bundle file read (the server takes at most its body limit anyway).
const MAX_BUNDLE_FILE: u64 = 256 * 1024 * 1024;

fn import(a: &EscrowImportArgs) -> Result<(), CliError> {
    let meta = std::fs::metadata(&a.bundle)
        .map_err(|e| CliError::msg(format!("{}: {e}", a.bundle.display()), BAD_INPUT))?;
    if !meta.is_file() || meta.len() > MAX_BUNDLE_FILE {
        return Err(CliError::msg(
            format!("{}: not a bundle file", a.bundle.display()),
            BAD_INPUT,
        ));
    }
    let raw = std::fs::read(&a.bundle)
        .map_err(|e| CliError::msg(format!("{}: {e}", a.bundle.display()), BAD_INPUT))?;
    let password = bundle_password(a.bundle_password_file.as_deref(), false)?;
    let (client, login) = connect(&a.login)?;
    let answer = client
        .import(&login, B64.encode(raw), password)
        .map_err(server_err)?;
    if a.login.json {
        return print_json(&answer);
    }
    for i in &answer.imported {
        outln!("imported  {:>8} -> {:>8}", i.source_number, i.escrow_number);
    }
    for i in &answer.already_present {
        outln!("present   {:>8} -> {:>8}", i.source_number, i.escrow_number);
    }
    errln!(
        "Imported {} entr{}; {} already present.",
        answer.imported.len(),
        if answer.imported.len() == 1 {
            "y"
        } else {
            "ies"
        },
        answer.already_present.len()
    );
    Ok(())
}
