//! Turning a parsed connection config back into a URL, for another database on the same
//! server (test databases, benchmark scratch databases), and printing a URL without its
//! password.

use tokio_postgres::config::Host;

/// The host (or socket directory) and port a config points at.
pub fn host_and_port(config: &tokio_postgres::Config) -> (String, u16) {
    let host = match config.get_hosts().first() {
        Some(Host::Tcp(host)) => host.clone(),
        Some(Host::Unix(path)) => path.display().to_string(),
        None => "127.0.0.1".to_owned(),
    };
    (host, config.get_ports().first().copied().unwrap_or(5432))
}

/// A `postgres://` URL for database `dbname` on the server `config` points at, with the
/// same user and password.
pub fn url_for(config: &tokio_postgres::Config, dbname: &str) -> String {
    let (host, port) = host_and_port(config);
    let user = config.get_user().unwrap_or("postgres");
    let password = config
        .get_password()
        .map(|p| format!(":{}", String::from_utf8_lossy(p)))
        .unwrap_or_default();
    if host.starts_with('/') {
        format!("postgres://{user}{password}@/{dbname}?host={host}&port={port}")
    } else {
        format!("postgres://{user}{password}@{host}:{port}/{dbname}")
    }
}

/// The URL without its password, for printing.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _password)) => {
                    format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..])
                }
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_round_trips_to_another_database_on_the_same_server() {
        let config: tokio_postgres::Config = "postgres://bank:secret@10.0.0.5:26257/main"
            .parse()
            .unwrap();
        let url = url_for(&config, "scratch");
        assert_eq!(url, "postgres://bank:secret@10.0.0.5:26257/scratch");
        let back: tokio_postgres::Config = url.parse().unwrap();
        assert_eq!(back.get_dbname(), Some("scratch"));
    }

    #[test]
    fn a_printed_url_hides_its_password_only() {
        assert_eq!(
            redact("postgres://bank:secret@10.0.0.5:5432/main"),
            "postgres://bank:***@10.0.0.5:5432/main"
        );
        assert_eq!(
            redact("postgres://bank@10.0.0.5/main"),
            "postgres://bank@10.0.0.5/main"
        );
        assert_eq!(redact("not a url"), "not a url");
    }
}
