//! A private PostgreSQL server run from the machine's own server binaries (`initdb`,
//! `pg_ctl`, `postgres`): used by `corebank up` when no `DATABASE_URL` is given, and by the
//! testkit. Nothing is downloaded.
//!
//! PostgreSQL refuses to run as root. When corebank runs as root (as CI does), the server's
//! commands run as the unprivileged `postgres` user through `runuser`, and the data
//! directory is handed to that user.

use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The user that runs the server when corebank itself runs as root.
pub const SERVER_USER_WHEN_ROOT: &str = "postgres";
/// How long `pg_ctl` may wait for the server to start or stop.
const PG_CTL_WAIT_SECONDS: u32 = 60;

/// The first existing ancestor of `path` that others may not enter (no `x` bit for
/// others), which keeps the server user (when corebank runs as root) out of `path`.
pub fn first_unreachable_ancestor(path: &Path) -> Option<PathBuf> {
    let absolute = std::path::absolute(path).ok()?;
    absolute
        .ancestors()
        .skip(1)
        .find(|dir| {
            std::fs::metadata(dir).is_ok_and(|metadata| metadata.permissions().mode() & 0o001 == 0)
        })
        .map(Path::to_path_buf)
}

/// Why a private server could not be had.
#[derive(Debug, thiserror::Error)]
pub enum LocalPgError {
    #[error(
        "no PostgreSQL server binaries (initdb, pg_ctl, postgres) were found on PATH, in \
         COREBANK_PG_BIN_DIR or under /usr/lib/postgresql/*/bin. Install the server package \
         (Debian/Ubuntu: `apt-get install postgresql`; Fedora: `dnf install postgresql-server`; \
         macOS: `brew install postgresql`), or set DATABASE_URL to a running server"
    )]
    NoBinaries,
    #[error(
        "PostgreSQL runs as the user `{user}` when corebank runs as root, and `{user}` cannot \
         enter {dir}; allow it with `chmod o+x {dir}`, choose another directory, or set \
         DATABASE_URL"
    )]
    NotReachable { user: &'static str, dir: String },
    #[error("`{command}` failed: {detail}")]
    Command { command: String, detail: String },
    #[error("{context}: {source}")]
    Io {
        context: String,
        #[source]
        source: std::io::Error,
    },
}

fn io_error(context: impl Into<String>) -> impl FnOnce(std::io::Error) -> LocalPgError {
    let context = context.into();
    move |source| LocalPgError::Io { context, source }
}

/// The directory that holds `initdb`, `pg_ctl` and `postgres` of one PostgreSQL version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgBinaries {
    dir: PathBuf,
}

impl PgBinaries {
    /// Finds the server binaries: `COREBANK_PG_BIN_DIR`, then `initdb` on PATH, then the
    /// newest version under the usual install locations.
    pub fn find() -> Result<PgBinaries, LocalPgError> {
        let mut candidates: Vec<PathBuf> = Vec::new();
        if let Some(dir) = std::env::var_os("COREBANK_PG_BIN_DIR") {
            candidates.push(PathBuf::from(dir));
        }
        if let Some(path) = std::env::var_os("PATH") {
            for dir in std::env::split_paths(&path) {
                let initdb = dir.join("initdb");
                if initdb.is_file() {
                    let resolved = std::fs::canonicalize(&initdb).unwrap_or(initdb);
                    if let Some(parent) = resolved.parent() {
                        candidates.push(parent.to_path_buf());
                    }
                }
            }
        }
        for root in ["/usr/lib/postgresql", "/usr/local/opt", "/opt/homebrew/opt"] {
            let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir(root)
                .into_iter()
                .flatten()
                .flatten()
                .filter_map(|entry| {
                    let name = entry.file_name().to_string_lossy().into_owned();
                    let digits: String = name.chars().filter(char::is_ascii_digit).collect();
                    let version = digits.parse::<u32>().ok()?;
                    Some((version, entry.path().join("bin")))
                })
                .collect();
            versions.sort();
            candidates.extend(versions.into_iter().rev().map(|(_, dir)| dir));
        }
        candidates.push(PathBuf::from("/usr/local/pgsql/bin"));
        candidates
            .into_iter()
            .find(|dir| {
                ["initdb", "pg_ctl", "postgres"]
                    .iter()
                    .all(|bin| dir.join(bin).is_file())
            })
            .map(|dir| PgBinaries { dir })
            .ok_or(LocalPgError::NoBinaries)
    }

    /// The binaries in `dir`, refused unless all three are there.
    pub fn in_dir(dir: &Path) -> Result<PgBinaries, LocalPgError> {
        if ["initdb", "pg_ctl", "postgres"]
            .iter()
            .all(|bin| dir.join(bin).is_file())
        {
            Ok(PgBinaries {
                dir: dir.to_path_buf(),
            })
        } else {
            Err(LocalPgError::NoBinaries)
        }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    pub fn path(&self, binary: &str) -> PathBuf {
        self.dir.join(binary)
    }
}

/// Whether this process runs as root (its effective uid, as /proc reports it).
pub fn running_as_root() -> bool {
    std::fs::metadata("/proc/self")
        .map(|m| m.uid() == 0)
        .unwrap_or(false)
}

/// How a private server is tuned.
#[derive(Debug, Clone)]
pub struct ServerTuning {
    /// fsync and synchronous_commit on: a platform run keeps what it acknowledged. Tests
    /// turn it off, since their databases are thrown away.
    pub durable: bool,
    pub max_connections: u32,
    pub shared_buffers_mb: u32,
}

impl ServerTuning {
    pub fn durable() -> ServerTuning {
        ServerTuning {
            durable: true,
            max_connections: 200,
            shared_buffers_mb: 256,
        }
    }

    pub fn for_tests() -> ServerTuning {
        ServerTuning {
            durable: false,
            max_connections: 400,
            shared_buffers_mb: 256,
        }
    }
}

/// A PostgreSQL data directory and the server that runs on it.
#[derive(Debug, Clone)]
pub struct LocalPostgres {
    binaries: PgBinaries,
    data_dir: PathBuf,
    run_as: Option<&'static str>,
}

impl LocalPostgres {
    /// A server on `data_dir` (which need not exist yet).
    pub fn new(binaries: PgBinaries, data_dir: impl Into<PathBuf>) -> LocalPostgres {
        let run_as = running_as_root().then_some(SERVER_USER_WHEN_ROOT);
        LocalPostgres {
            binaries,
            data_dir: data_dir.into(),
            run_as,
        }
    }

    pub fn data_dir(&self) -> &Path {
        &self.data_dir
    }

    pub fn log_file(&self) -> PathBuf {
        self.data_dir.join("server.log")
    }

    pub fn binaries(&self) -> &PgBinaries {
        &self.binaries
    }

    /// The user the server's commands run as, when not the current one.
    pub fn run_as(&self) -> Option<&'static str> {
        self.run_as
    }

    pub fn is_initialized(&self) -> bool {
        self.data_dir.join("PG_VERSION").is_file()
    }

    /// A command for one of the server's binaries, run as the server user when needed.
    pub fn command(&self, binary: &str) -> Command {
        match self.run_as {
            Some(user) => {
                let mut command = Command::new("runuser");
                command
                    .arg("-u")
                    .arg(user)
                    .arg("--")
                    .arg(self.binaries.path(binary));
                command
            }
            None => Command::new(self.binaries.path(binary)),
        }
    }

    /// Creates the data directory with `initdb` and writes the server's settings. Blocking:
    /// call it from `spawn_blocking` in async code.
    pub fn init(&self, tuning: &ServerTuning) -> Result<(), LocalPgError> {
        std::fs::create_dir_all(&self.data_dir)
            .map_err(io_error(format!("creating {}", self.data_dir.display())))?;
        std::fs::set_permissions(&self.data_dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_error(format!("restricting {}", self.data_dir.display())))?;
        if let Some(user) = self.run_as {
            self.check_reachable(user)?;
            run(Command::new("chown")
                .arg(format!("{user}:"))
                .arg(&self.data_dir))?;
        }
        let mut initdb = self.command("initdb");
        initdb.arg("-D").arg(&self.data_dir).args([
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
        ]);
        if !tuning.durable {
            initdb.arg("--no-sync");
        }
        run(&mut initdb)?;
        let durable = if tuning.durable { "on" } else { "off" };
        // A ledger writes WAL fast: a larger max_wal_size keeps checkpoints (and the latency
        // spikes they cause) from coming every few seconds under load.
        let settings = format!(
            "\n# Written by corebank.\n\
             listen_addresses = '127.0.0.1'\n\
             unix_socket_directories = ''\n\
             default_transaction_isolation = 'serializable'\n\
             max_connections = {max_connections}\n\
             shared_buffers = {shared_buffers}MB\n\
             max_pred_locks_per_transaction = 256\n\
             deadlock_timeout = '100ms'\n\
             max_wal_size = '4GB'\n\
             checkpoint_timeout = '15min'\n\
             fsync = {durable}\n\
             synchronous_commit = {durable}\n\
             full_page_writes = {durable}\n\
             log_min_messages = warning\n\
             log_min_error_statement = panic\n",
            max_connections = tuning.max_connections,
            shared_buffers = tuning.shared_buffers_mb,
        );
        let conf = self.data_dir.join("postgresql.conf");
        let mut text = std::fs::read_to_string(&conf)
            .map_err(io_error(format!("reading {}", conf.display())))?;
        text.push_str(&settings);
        std::fs::write(&conf, text).map_err(io_error(format!("writing {}", conf.display())))?;
        Ok(())
    }

    /// Every ancestor of the data directory must be enterable by the server user.
    fn check_reachable(&self, user: &'static str) -> Result<(), LocalPgError> {
        match first_unreachable_ancestor(&self.data_dir) {
            Some(dir) => Err(LocalPgError::NotReachable {
                user,
                dir: dir.display().to_string(),
            }),
            None => Ok(()),
        }
    }

    /// Starts the server on 127.0.0.1:`port` and waits until it accepts connections. The
    /// server gets its own process group, so a Ctrl-C at the terminal reaches corebank (which
    /// then stops the server cleanly) and not the server directly.
    pub fn start(&self, port: u16) -> Result<(), LocalPgError> {
        let mut pg_ctl = self.command("pg_ctl");
        pg_ctl
            .arg("-D")
            .arg(&self.data_dir)
            .arg("-l")
            .arg(self.log_file())
            .arg("-o")
            .arg(format!("-p {port}"))
            .args(["-w", "-t", &PG_CTL_WAIT_SECONDS.to_string(), "start"])
            .process_group(0);
        run(&mut pg_ctl).map_err(|error| match error {
            LocalPgError::Command { command, detail } => LocalPgError::Command {
                command,
                detail: format!(
                    "{detail}\nserver log ({}):\n{}",
                    self.log_file().display(),
                    self.log_tail()
                ),
            },
            other => other,
        })
    }

    /// Stops the server: `fast` rolls back open transactions and shuts down cleanly.
    pub fn stop(&self) -> Result<(), LocalPgError> {
        run(self.command("pg_ctl").arg("-D").arg(&self.data_dir).args([
            "-m",
            "fast",
            "-w",
            "-t",
            &PG_CTL_WAIT_SECONDS.to_string(),
            "stop",
        ]))
    }

    /// Whether a server is running on this data directory.
    pub fn is_running(&self) -> bool {
        self.command("pg_ctl")
            .arg("-D")
            .arg(&self.data_dir)
            .arg("status")
            .stdin(Stdio::null())
            .output()
            .is_ok_and(|output| output.status.success())
    }

    /// The URL of database `dbname` on this server at `port`.
    pub fn url(port: u16, dbname: &str) -> String {
        format!("postgres://postgres@127.0.0.1:{port}/{dbname}")
    }

    fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.log_file()).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(20)..].join("\n")
    }
}

/// A TCP port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> Result<u16, LocalPgError> {
    let listener =
        std::net::TcpListener::bind("127.0.0.1:0").map_err(io_error("finding a free port"))?;
    let port = listener
        .local_addr()
        .map_err(io_error("finding a free port"))?
        .port();
    Ok(port)
}

fn run(command: &mut Command) -> Result<(), LocalPgError> {
    let described = format!("{command:?}");
    let output: Output = command
        .stdin(Stdio::null())
        .output()
        .map_err(io_error(format!("running {described}")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(LocalPgError::Command {
            command: described,
            detail: format!(
                "{}{}{}",
                output.status,
                String::from_utf8_lossy(&output.stdout).trim_end(),
                String::from_utf8_lossy(&output.stderr).trim_end()
            ),
        })
    }
}
