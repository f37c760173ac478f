//! nginx as a plain reverse proxy in front of the gateway, to price one ordinary proxy hop on
//! the same request.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// Idle keep-alive connections nginx keeps to the gateway.
const NGINX_UPSTREAM_KEEPALIVE: u32 = 64;
/// How long nginx may take to accept connections.
const NGINX_START_TIMEOUT: Duration = Duration::from_secs(10);
const NGINX_START_POLL: Duration = Duration::from_millis(50);

/// nginx as a plain reverse proxy in front of the gateway: a child process of this one,
/// killed when the benchmark ends (or when this value is dropped, on an error).
pub struct Nginx {
    child: tokio::process::Child,
    pub url: String,
}

/// Debian's nginx, or the first on PATH.
pub fn find_nginx() -> anyhow::Result<PathBuf> {
    let on_path = std::env::var_os("PATH")
        .map(|paths| {
            std::env::split_paths(&paths)
                .map(|dir| dir.join("nginx"))
                .collect::<Vec<_>>()
        })
        .unwrap_or_default();
    std::iter::once(PathBuf::from("/usr/sbin/nginx"))
        .chain(on_path)
        .find(|path| path.is_file())
        .context(
            "nginx not found (neither /usr/sbin/nginx nor on PATH): the gateway benchmark \
             prices one nginx hop in front of the gateway; install Debian's package with \
             `apt-get install nginx-light`",
        )
}

impl Nginx {
    pub async fn start(binary: &Path, scratch: &Path, gateway_url: &str) -> anyhow::Result<Nginx> {
        let dir = scratch.join("nginx");
        for sub in ["", "client_body", "proxy"] {
            std::fs::create_dir_all(dir.join(sub))
                .with_context(|| format!("creating {}", dir.join(sub).display()))?;
        }
        let upstream = gateway_url
            .strip_prefix("http://")
            .with_context(|| format!("the gateway's URL {gateway_url} is not http://"))?;
        let port = corebank_db::local::free_port()?;
        let config = nginx_config(&dir, upstream, port);
        let config_path = dir.join("nginx.conf");
        std::fs::write(&config_path, config)
            .with_context(|| format!("writing {}", config_path.display()))?;
        let error_log = dir.join("error.log");
        let mut child = tokio::process::Command::new(binary)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&config_path)
            .arg("-e")
            .arg(&error_log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
        let started = Instant::now();
        loop {
            if let Some(status) = child.try_wait()? {
                bail!(
                    "nginx exited at start ({status}): {}",
                    std::fs::read_to_string(&error_log).unwrap_or_default()
                );
            }
            if tokio::net::TcpStream::connect(addr).await.is_ok() {
                break;
            }
            if started.elapsed() > NGINX_START_TIMEOUT {
                let _ = child.start_kill();
                bail!(
                    "nginx did not listen on {addr} within {} s: {}",
                    NGINX_START_TIMEOUT.as_secs(),
                    std::fs::read_to_string(&error_log).unwrap_or_default()
                );
            }
            tokio::time::sleep(NGINX_START_POLL).await;
        }
        Ok(Nginx {
            child,
            url: format!("http://{addr}"),
        })
    }

    pub async fn stop(&mut self) {
        // One process (master_process off): killing it leaves nothing behind.
        let _ = self.child.start_kill();
        let _ = self.child.wait().await;
    }
}

/// A plain reverse proxy: one process, HTTP/1.1 keep-alive on both sides, no access log,
/// everything it writes under `dir`.
fn nginx_config(dir: &Path, upstream: &str, port: u16) -> String {
    let dir = dir.display();
    format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {dir}/nginx.pid;
error_log {dir}/error.log warn;

events {{
    worker_connections 4096;
}}

http {{
    access_log off;
    client_body_temp_path {dir}/client_body;
    proxy_temp_path {dir}/proxy;
    keepalive_requests 1000000;
    keepalive_timeout 75s;

    upstream corebank_gateway {{
        server {upstream};
        keepalive {NGINX_UPSTREAM_KEEPALIVE};
        keepalive_requests 1000000;
    }}

    server {{
        listen 127.0.0.1:{port};
        location / {{
            proxy_pass http://corebank_gateway;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
        }}
    }}
}}
"#
    )
}
