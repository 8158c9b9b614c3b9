//! LDAP and Active Directory logins (`<LDAP>` in the configuration): a user name that is not
//! in the local `USER` table is checked against the directory by a simple bind as the user,
//! found either from a DN template (`uid={user},ou=people,…`, or `{user}@example.org` for
//! Active Directory) or by a search (`SEARCH_BASE`, `SEARCH_FILTER`, as an optional search
//! account). After the bind, an optional `ENABLED_FILTER` must match the user's own entry
//! (else the account counts as disabled), and membership of `ADMIN_GROUP` (`member`,
//! `uniqueMember` or `memberUid`) makes the user an escrow admin. Passwords go only over TLS
//! (`ldaps://` or StartTLS) to a server whose certificate the configured CA signed; plain
//! `ldap://` is accepted only to a loopback address.
//!
//! User names are escaped for the DN (RFC 4514) and the filter (RFC 4515) they go into, and
//! an empty password is refused before the directory is asked (a simple bind with an empty
//! password is an anonymous bind, which succeeds).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{Ldap, LdapConnAsync, LdapConnSettings, Scope, SearchEntry, dn_escape, ldap_escape};
use tokio_rustls::rustls::pki_types::CertificateDer;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::{ClientConfig, RootCertStore};

use crate::secret::SecretText;

/// How a user's entry is found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum UserLookup {
    /// `BIND_DN`: the user's DN (or Active Directory's `user@domain`), `{user}` replaced by the
    /// escaped user name.
    Template(String),
    /// `SEARCH_BASE` and `SEARCH_FILTER` (`{user}` replaced), searched in the subtree, as
    /// `SEARCH_BIND_DN` with the password in `SEARCH_BIND_PASSWORD_FILE` when given, else
    /// anonymously. Exactly one entry must match.
    Search {
        /// Where to search.
        base: String,
        /// The filter.
        filter: String,
        /// The search account, and the file holding its password.
        bind: Option<(String, PathBuf)>,
    },
}

/// The `<LDAP>` element.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LdapConfig {
    /// `ldaps://host[:port]` or `ldap://host[:port]`.
    pub url: String,
    /// StartTLS on an `ldap://` URL.
    pub starttls: bool,
    /// The CA that signed the directory's certificate (required with TLS).
    pub ca_certificate: Option<PathBuf>,
    /// How the user's entry is found.
    pub lookup: UserLookup,
    /// A filter the user's own entry must match after the bind (else: disabled).
    pub enabled_filter: Option<String>,
    /// The DN of the group whose members are escrow admins.
    pub admin_group: Option<String>,
    /// Longest wait for the directory, per login.
    pub timeout: Duration,
}

/// What the directory said of a login.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DirectoryLogin {
    /// The password is right and the account enabled.
    Accepted {
        /// The user's DN.
        dn: String,
        /// Member of the admin group.
        admin: bool,
    },
    /// No such user, or a wrong password.
    Refused,
    /// The password is right but the account is disabled (`ENABLED_FILTER`).
    Disabled,
}

/// The directory could not answer (unreachable, TLS, a search that failed).
#[derive(Debug, thiserror::Error)]
#[error("the LDAP directory cannot check logins: {0}")]
pub struct DirectoryError(String);

fn fail(e: impl std::fmt::Display) -> DirectoryError {
    DirectoryError(e.to_string())
}

/// The LDAP result code of invalid credentials.
const INVALID_CREDENTIALS: u32 = 49;
/// The LDAP result code of an entry that does not exist.
const NO_SUCH_OBJECT: u32 = 32;

/// A configured directory, ready to check logins.
pub struct Directory {
    cfg: LdapConfig,
    tls: Option<Arc<ClientConfig>>,
    search_password: Option<SecretText>,
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("url", &self.cfg.url)
            .finish_non_exhaustive()
    }
}

impl Directory {
    /// Reads the CA certificate and the search account's password file of `cfg`.
    ///
    /// # Errors
    /// A file that cannot be read, or a CA file without a certificate.
    pub fn new(cfg: &LdapConfig) -> Result<Directory, DirectoryError> {
        let tls = match &cfg.ca_certificate {
            None => None,
            Some(path) => {
                let mut roots = RootCertStore::empty();
                let certs = CertificateDer::pem_file_iter(path)
                    .map_err(|e| fail(format!("CA certificate {}: {e}", path.display())))?;
                for c in certs {
                    let c =
                        c.map_err(|e| fail(format!("CA certificate {}: {e}", path.display())))?;
                    roots
                        .add(c)
                        .map_err(|e| fail(format!("CA certificate {}: {e}", path.display())))?;
                }
                if roots.is_empty() {
                    return Err(fail(format!(
                        "CA certificate {}: no certificate in it",
                        path.display()
                    )));
                }
                let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
                let config = ClientConfig::builder_with_provider(provider)
                    .with_safe_default_protocol_versions()
                    .map_err(fail)?
                    .with_root_certificates(roots)
                    .with_no_client_auth();
                Some(Arc::new(config))
            }
        };
        let search_password = match &cfg.lookup {
            UserLookup::Search {
                bind: Some((_, file)),
                ..
            } => {
                let f = std::fs::File::open(file).map_err(|e| {
                    fail(format!("SEARCH_BIND_PASSWORD_FILE {}: {e}", file.display()))
                })?;
                let bytes = crate::secret::read_secret(f, 4096, true).map_err(|e| {
                    fail(format!("SEARCH_BIND_PASSWORD_FILE {}: {e}", file.display()))
                })?;
                Some(SecretText::from_secret(bytes).ok_or_else(|| {
                    fail(format!(
                        "SEARCH_BIND_PASSWORD_FILE {}: not UTF-8",
                        file.display()
                    ))
                })?)
            }
            _ => None,
        };
        Ok(Directory {
            cfg: cfg.clone(),
            tls,
            search_password,
        })
    }

    async fn connect(&self) -> Result<Ldap, DirectoryError> {
        let mut settings = LdapConnSettings::new()
            .set_conn_timeout(self.cfg.timeout)
            .set_starttls(self.cfg.starttls);
        if let Some(tls) = &self.tls {
            settings = settings.set_config(tls.clone());
        }
        let (conn, ldap) = LdapConnAsync::with_settings(settings, &self.cfg.url)
            .await
            .map_err(|e| fail(format!("{}: {e}", self.cfg.url)))?;
        ldap3::drive!(conn);
        Ok(ldap)
    }

    /// Checks `password` for `user` against the directory, within the configured timeout.
    ///
    /// # Errors
    /// [`DirectoryError`] when the directory cannot answer.
    pub async fn login(
        &self,
        user: &str,
        password: &[u8],
    ) -> Result<DirectoryLogin, DirectoryError> {
        // An empty password would make the bind anonymous, which succeeds.
        let Ok(password) = std::str::from_utf8(password) else {
            return Ok(DirectoryLogin::Refused);
        };
        if password.is_empty() || user.is_empty() {
            return Ok(DirectoryLogin::Refused);
        }
        tokio::time::timeout(self.cfg.timeout, self.check(user, password))
            .await
            .map_err(|_| {
                fail(format!(
                    "{}: no answer within {:?}",
                    self.cfg.url, self.cfg.timeout
                ))
            })?
    }

    async fn check(&self, user: &str, password: &str) -> Result<DirectoryLogin, DirectoryError> {
        let mut ldap = self.connect().await?;
        let dn = match &self.cfg.lookup {
            UserLookup::Template(t) => t.replace("{user}", &dn_escape(user)),
            UserLookup::Search { base, filter, bind } => {
                if let (Some((bind_dn, _)), Some(pw)) = (bind, &self.search_password) {
                    ldap.simple_bind(bind_dn, pw.as_str())
                        .await
                        .map_err(fail)?
                        .success()
                        .map_err(|e| fail(format!("the search account's bind: {e}")))?;
                }
                let filter = filter.replace("{user}", &ldap_escape(user));
                let (found, _) = ldap
                    .search(base, Scope::Subtree, &filter, vec!["1.1"])
                    .await
                    .map_err(fail)?
                    .success()
                    .map_err(|e| fail(format!("the user search: {e}")))?;
                match found.len() {
                    0 => {
                        let _ = ldap.unbind().await;
                        return Ok(DirectoryLogin::Refused);
                    }
                    1 => SearchEntry::construct(found.into_iter().next().expect("one")).dn,
                    n => {
                        return Err(fail(format!(
                            "SEARCH_FILTER matches {n} entries for one user name"
                        )));
                    }
                }
            }
        };
        let bound = ldap.simple_bind(&dn, password).await.map_err(fail)?;
        match bound.rc {
            0 => {}
            INVALID_CREDENTIALS => {
                let _ = ldap.unbind().await;
                return Ok(DirectoryLogin::Refused);
            }
            rc => return Err(fail(format!("the bind answered {rc} {}", bound.text))),
        }
        if let Some(f) = &self.cfg.enabled_filter {
            let (found, _) = ldap
                .search(&dn, Scope::Base, f, vec!["1.1"])
                .await
                .map_err(fail)?
                .success()
                .map_err(|e| fail(format!("ENABLED_FILTER: {e}")))?;
            if found.is_empty() {
                let _ = ldap.unbind().await;
                return Ok(DirectoryLogin::Disabled);
            }
        }
        let admin = match &self.cfg.admin_group {
            None => false,
            Some(group) => {
                let filter = format!(
                    "(|(member={dn})(uniqueMember={dn})(memberUid={uid}))",
                    dn = ldap_escape(dn.as_str()),
                    uid = ldap_escape(user)
                );
                let r = ldap
                    .search(group, Scope::Base, &filter, vec!["1.1"])
                    .await
                    .map_err(fail)?;
                match r.1.rc {
                    0 => !r.0.is_empty(),
                    NO_SUCH_OBJECT => false,
                    rc => {
                        return Err(fail(format!(
                            "ADMIN_GROUP search answered {rc} {}",
                            r.1.text
                        )));
                    }
                }
            }
        };
        let _ = ldap.unbind().await;
        Ok(DirectoryLogin::Accepted { dn, admin })
    }
}
