//! Every setting, once: its name, default and meaning. `config` prints this table and
//! `docs/CONFIGURATION.md` is generated from it (`render_markdown`).

/// One setting: its variable, its default (empty: none) and what it does.
#[derive(Debug, Clone, Copy)]
pub struct SettingSpec {
    pub name: &'static str,
    pub default: &'static str,
    pub description: &'static str,
}

/// Every setting corebank reads. Add a variable here first; `Settings` reads only these.
pub const SETTINGS: &[SettingSpec] = &[
    SettingSpec {
        name: "DATABASE_URL",
        default: "",
        description: "PostgreSQL or CockroachDB URL, e.g. `postgres://postgres@127.0.0.1:5432/corebank`. \
                      Unset: `corebank up` starts a private PostgreSQL under `COREBANK_HOME`; \
                      `serve` and `migrate` refuse to start.",
    },
    SettingSpec {
        name: "COREBANK_HOME",
        default: ".corebank",
        description: "Directory for `corebank up`'s private PostgreSQL (`<home>/pg`) and its state.",
    },
    SettingSpec {
        name: "COREBANK_HTTP_ADDR",
        default: "127.0.0.1:8080",
        description: "The public listener: the gateway's `/v1`, `/admin/v1` and API reference, and \
                      `/healthz`, `/readyz` for every component (nothing internal answers there). \
                      Port 0 picks a free port (printed at start).",
    },
    SettingSpec {
        name: "COREBANK_INTERNAL_ADDR",
        default: "127.0.0.1:8081",
        description: "The internal listener: module gRPC, `SagaAdmin`, the rail's callbacks, health \
                      and metrics, behind mutual TLS; each service answers only the components \
                      allowed to call it (docs/SECURITY.md). Port 0 picks a free port.",
    },
    SettingSpec {
        name: "COREBANK_METRICS_PUBLIC",
        default: "false",
        description: "`true` serves `/metrics` on the public listener too (it is always on the \
                      internal one, for any component with a certificate, e.g. `monitoring`).",
    },
    SettingSpec {
        name: "COREBANK_INSECURE_INTERNAL",
        default: "false",
        description: "`true` makes internal listeners and calls plain text: callers only name \
                      themselves and nothing is proved. Development only; a warning is logged at \
                      every start.",
    },
    SettingSpec {
        name: "COREBANK_TLS_DIR",
        default: "",
        description: "Directory with `ca.crt` and `<component>.crt`/`.key` for each component this \
                      process runs, as `corebank certs` writes it. Empty: `<COREBANK_HOME>/certs`. \
                      `COREBANK_TLS_CA`/`_CERT`/`_KEY` take precedence when set.",
    },
    SettingSpec {
        name: "COREBANK_TLS_CA",
        default: "",
        description: "PEM bundle of the internal CA(s) every peer's certificate must chain to \
                      (production: the bank's PKI). Set with `COREBANK_TLS_CERT` and `COREBANK_TLS_KEY`.",
    },
    SettingSpec {
        name: "COREBANK_TLS_CERT",
        default: "",
        description: "PEM certificate chain of this component; its URI SAN must be \
                      `spiffe://<COREBANK_TLS_TRUST_DOMAIN>/<component>` and its DNS SAN \
                      `<component>.<COREBANK_TLS_TRUST_DOMAIN>`.",
    },
    SettingSpec {
        name: "COREBANK_TLS_KEY",
        default: "",
        description: "PEM private key (PKCS#8, SEC1 or PKCS#1) of `COREBANK_TLS_CERT`; keep it 0600.",
    },
    SettingSpec {
        name: "COREBANK_TLS_TRUST_DOMAIN",
        default: "corebank.internal",
        description: "The SPIFFE trust domain of internal certificates, also the DNS suffix clients \
                      check: the ledger's certificate is `spiffe://corebank.internal/ledger` and \
                      `ledger.corebank.internal`.",
    },
    SettingSpec {
        name: "COREBANK_DEV",
        default: "false",
        description: "`true` allows development conveniences outside `corebank up`: the gateway \
                      accepts the dev signing keys under `<COREBANK_HOME>/dev-keys`. Never in production.",
    },
    SettingSpec {
        name: "COREBANK_LOG",
        default: "info",
        description: "Log filter in `tracing` syntax, e.g. `info,corebank_db=debug`.",
    },
    SettingSpec {
        name: "COREBANK_LOG_FORMAT",
        default: "text",
        description: "`text` (readable in a terminal) or `json` (one object per line).",
    },
    SettingSpec {
        name: "COREBANK_DB_POOL_SIZE_MAX",
        default: "16",
        description: "Database connections kept at most per component.",
    },
    SettingSpec {
        name: "COREBANK_DB_CONNECT_TIMEOUT_MS",
        default: "5000",
        description: "How long to wait for a new connection or a free pooled one; also the readiness probe's timeout.",
    },
    SettingSpec {
        name: "COREBANK_DB_STATEMENT_TIMEOUT_MS",
        default: "10000",
        description: "The server cancels a statement that runs longer (`statement_timeout`).",
    },
    SettingSpec {
        name: "COREBANK_DB_LOCK_TIMEOUT_MS",
        default: "5000",
        description: "The server stops waiting for a row lock after this long (`lock_timeout`).",
    },
    SettingSpec {
        name: "COREBANK_DB_TX_ATTEMPTS_MAX",
        default: "100",
        description: "Attempts at most for one transaction retried on serialization failures.",
    },
    SettingSpec {
        name: "COREBANK_DB_TX_DEADLINE_MS",
        default: "15000",
        description: "No retry of a transaction starts after this long since its first attempt.",
    },
    SettingSpec {
        name: "COREBANK_REQUESTS_IN_FLIGHT_MAX",
        default: "1024",
        description: "Requests a component serves at once; more wait in line.",
    },
    SettingSpec {
        name: "COREBANK_SHUTDOWN_GRACE_MS",
        default: "10000",
        description: "On SIGINT/SIGTERM, how long requests in flight may take to finish before they are cut.",
    },
    SettingSpec {
        name: "COREBANK_PG_BIN_DIR",
        default: "",
        description: "Where PostgreSQL's server binaries (`initdb`, `pg_ctl`, `postgres`) are; unset: \
                      found on PATH or under `/usr/lib/postgresql/*/bin`.",
    },
    SettingSpec {
        name: "COREBANK_UP_PG_PORT",
        default: "0",
        description: "Port of `corebank up`'s private PostgreSQL on 127.0.0.1; 0 picks a free port.",
    },
    SettingSpec {
        name: "COREBANK_LEDGER_URL",
        default: "",
        description: "Where the ledger's gRPC API is (its internal listener), e.g. `https://127.0.0.1:8081`, for components \
                      that move money through it (`serve deposits`, `accrue`). `corebank up` \
                      uses its own server.",
    },
    SettingSpec {
        name: "COREBANK_DEPOSITS_JOB_INTERVAL_S",
        default: "3600",
        description: "How often the deposits job accrues interest up to yesterday (posting at \
                      period ends), marks dormant accounts and closes expired holds.",
    },
    SettingSpec {
        name: "COREBANK_BUSINESS_TZ",
        default: "UTC",
        description: "The bank's business time zone, an IANA name (`Europe/Paris`): deposits' \
                      business days (daily transfer limits, interest accrual days, opening \
                      dates) start at its midnight.",
    },
    SettingSpec {
        name: "COREBANK_DEPOSITS_IN_DOUBT_WINDOW_S",
        default: "300",
        description: "How old a deposits request still waiting for its local answer must be \
                      before the scheduled job asks the ledger whether its entry exists and \
                      completes or fails it (longer than any ledger call can take).",
    },
    SettingSpec {
        name: "COREBANK_DEPOSITS_URL",
        default: "",
        description: "Where the deposits module's gRPC API is, for `serve payments`. `corebank up` \
                      uses its own server.",
    },
    SettingSpec {
        name: "COREBANK_RAIL_URL",
        default: "",
        description: "Where the clearing rail takes pacs.008, e.g. \
                      `https://127.0.0.1:8082/rail-sim/v1` (`serve payments`; the rail's certificate must answer). `corebank up` uses \
                      its own rail simulator.",
    },
    SettingSpec {
        name: "COREBANK_RAIL_BANK_URL",
        default: "",
        description: "Where the rail simulator delivers pacs.002 and inbound pacs.008: the payments \
                      component's internal `https://…/payments/rail/v1` (`serve rail-sim`). `corebank up` uses its own.",
    },
    SettingSpec {
        name: "COREBANK_RAIL_OUTCOMES",
        default: "accept=90,reject=8,silent=2",
        description: "The rail simulator's mix of outcomes: accepted, rejected (pacs.002 RJCT) and \
                      silent (no pacs.002 sent; the bank has to ask), as weights.",
    },
    SettingSpec {
        name: "COREBANK_RAIL_DELAY_MS",
        default: "20-200",
        description: "How long the rail simulator takes to decide a payment, as a range in ms.",
    },
    SettingSpec {
        name: "COREBANK_RAIL_KEYS",
        default: "",
        description: "Keys that sign and verify every message between the bank and the clearing \
                      rail: `kid:base64secret[,kid:base64secret…]` (secrets of 32 bytes or more). The \
                      first signs; every listed key verifies, so a key rotates by being listed first, \
                      then the old one removed. Required by `serve payments` and `serve rail-sim`; \
                      `corebank up` makes one for its run.",
    },
    SettingSpec {
        name: "COREBANK_SANCTIONS_UN_XML",
        default: "",
        description: "Screening: the UN Security Council consolidated list, as published (XML file). \
                      Payments refuse to start when it does not parse (the error names the line).",
    },
    SettingSpec {
        name: "COREBANK_SANCTIONS_OFAC_SDN_CSV",
        default: "",
        description: "Screening: OFAC's SDN list, as published (`sdn.csv`). With no list named, \
                      payments screen against an empty list and warn at start.",
    },
    SettingSpec {
        name: "COREBANK_SANCTIONS_OFAC_ALT_CSV",
        default: "",
        description: "Screening: OFAC's aliases of the SDN list (`alt.csv`); only with \
                      COREBANK_SANCTIONS_OFAC_SDN_CSV.",
    },
    SettingSpec {
        name: "COREBANK_SCREENING_THRESHOLDS",
        default: "*:0.93",
        description: "Screening: the Jaro-Winkler score (0.5-1.0) at which a normalised name is a \
                      possible sanctions hit, per currency: `EUR:0.92,USD:0.90,*:0.93`.",
    },
    SettingSpec {
        name: "COREBANK_PAYMENTS_MAX_AMOUNT",
        default: "100000",
        description: "Screening: an outbound payment above this amount is refused.",
    },
    SettingSpec {
        name: "COREBANK_PAYMENTS_MAX_PER_HOUR",
        default: "100",
        description: "Screening: more outbound payments than this from one account within an hour \
                      are refused.",
    },
    SettingSpec {
        name: "COREBANK_SAGA_LEASE_MS",
        default: "15000",
        description: "How long a saga executor's claim on a saga lasts without renewal: a crashed \
                      executor's sagas are resumed by another replica after this long.",
    },
    SettingSpec {
        name: "COREBANK_SAGA_POLL_MS",
        default: "250",
        description: "How often a saga executor looks for due sagas (retries whose backoff ended, \
                      sagas whose executor died) when nothing wakes it sooner.",
    },
    SettingSpec {
        name: "COREBANK_SAGA_IN_FLIGHT_MAX",
        default: "128",
        description: "Sagas one executor drives at once; more wait in the database until claimed.",
    },
    SettingSpec {
        name: "COREBANK_DEMO_CALL_DELAY_MS",
        default: "0",
        description: "How long the demo saga's outside call (its `notify` step) takes; for fault \
                      and crash testing.",
    },
    SettingSpec {
        name: "COREBANK_RELAY_SCHEMAS",
        default: "ledger,deposits,payments",
        description: "The schemas whose transactional outbox the relay publishes (`corebank serve relay`, \
                      and inside `corebank up`), comma-separated, e.g. `ledger,demo`.",
    },
    SettingSpec {
        name: "COREBANK_RELAY_BATCH_SIZE_MAX",
        default: "256",
        description: "Outbox events the relay reads and publishes at most per batch.",
    },
    SettingSpec {
        name: "COREBANK_RELAY_LEASE_MS",
        default: "15000",
        description: "How long a relay's lease on an outbox partition lasts without renewal: a crashed \
                      relay's partitions are taken over after this long. At least twice \
                      `COREBANK_RELAY_PUBLISH_TIMEOUT_MS`.",
    },
    SettingSpec {
        name: "COREBANK_RELAY_POLL_MS",
        default: "100",
        description: "How long the relay waits before looking again at an outbox it found empty.",
    },
    SettingSpec {
        name: "COREBANK_RELAY_PUBLISH_TIMEOUT_MS",
        default: "5000",
        description: "How long one publish (to NATS, or to an in-process subscriber) may take before \
                      the relay counts it as failed and tries again later.",
    },
    SettingSpec {
        name: "COREBANK_NATS_URL",
        default: "",
        description: "NATS server with JetStream the relay publishes outbox events to, e.g. \
                      `nats://127.0.0.1:4222`. Unset: no NATS sink (`corebank up` then delivers to \
                      in-process subscribers only; `corebank serve relay` refuses to start).",
    },
    SettingSpec {
        name: "COREBANK_NATS_SUBJECT_PREFIX",
        default: "corebank",
        description: "First subject token(s) of published events (`<prefix>.<schema>.<aggregatetype>`) \
                      and prefix of the JetStream stream names (`<PREFIX>_<SCHEMA>`), created when missing.",
    },
    SettingSpec {
        name: "COREBANK_NATS_TLS_CA",
        default: "",
        description: "PEM bundle of the CA(s) the NATS server's certificate must chain to. Setting it (or \
                      `COREBANK_NATS_TLS_CERT`) makes the relay refuse to talk to NATS without TLS. \
                      Unset: plain text, unless the URL is `tls://…` (then the platform's roots).",
    },
    SettingSpec {
        name: "COREBANK_NATS_TLS_CERT",
        default: "",
        description: "PEM certificate chain the relay presents to NATS (servers run with `--tlsverify`). \
                      Set with `COREBANK_NATS_TLS_KEY`.",
    },
    SettingSpec {
        name: "COREBANK_NATS_TLS_KEY",
        default: "",
        description: "PEM private key of `COREBANK_NATS_TLS_CERT`; keep it 0600.",
    },
    SettingSpec {
        name: "COREBANK_LEGACY_CORE_ADDR",
        default: "127.0.0.1:7023",
        description: "Where the mock legacy core speaks OFS over TCP: the address `corebank serve legacy-core` \
                      (and `corebank up`) listens on and the legacy adapter connects to.",
    },
    SettingSpec {
        name: "COREBANK_LEGACY_USER",
        default: "INPUTT",
        description: "The adapter's OFS sign-on user at the legacy core.",
    },
    SettingSpec {
        name: "COREBANK_LEGACY_PASSWORD",
        default: "123456",
        description: "The adapter's OFS sign-on password. The mock core accepts `INPUTT`/`123456` \
                      (seeded by its migrations); set your own in production.",
    },
    SettingSpec {
        name: "COREBANK_LEGACY_ADMIN_PASSWORD",
        default: "admin",
        description: "Password of the mock core's `ADMIN` user, who alone may send `ADMIN.FAULTS` \
                      (fault injection at run time) on the OFS port.",
    },
    SettingSpec {
        name: "COREBANK_LEGACY_FAULTS",
        default: "",
        description: "Faults the mock legacy core starts with, e.g. \
                      `latency_ms=5-50,error_rate=0.01,timeout_rate=0.001,timeout_ms=30000,drop_after_commit_rate=0.1`. \
                      Empty: none. Change them at run time with `ADMIN.FAULTS` (legacy-adapter/README.md).",
    },
    SettingSpec {
        name: "COREBANK_LEGACY_COB_WINDOW",
        default: "",
        description: "A daily close-of-business window of the mock core, `HH:MM-HH:MM` in UTC (it may \
                      wrap midnight), during which it answers every request with -3 offline. Empty: none.",
    },
    SettingSpec {
        name: "COREBANK_LEGACY_SEED_CUSTOMERS",
        default: "0",
        description: "Customers the mock core seeds (deterministically) when its books are empty, each \
                      with a current and a savings account, balances, and some holds and loans. \
                      `corebank up` seeds 50 when this is 0.",
    },
    SettingSpec {
        name: "COREBANK_LEGACY_ADAPTER_ADDR",
        default: "127.0.0.1:8091",
        description: "Where `corebank up` serves the legacy adapter's gRPC (the same \
                      `corebank.deposits.v1.Deposits` and `corebank.payments.v1.Payments` contracts as \
                      the modern modules, so it needs a port of its own).",
    },
    SettingSpec {
        name: "COREBANK_LEGACY_POOL_SIZE",
        default: "8",
        description: "OFS connections the legacy adapter keeps open to the core.",
    },
    SettingSpec {
        name: "COREBANK_LEGACY_CALL_TIMEOUT_MS",
        default: "5000",
        description: "How long the adapter waits for one OFS answer before it treats the outcome as \
                      unknown (and asks the core whether the transaction exists).",
    },
    SettingSpec {
        name: "COREBANK_LEGACY_BREAKER_FAILURES",
        default: "5",
        description: "Consecutive failed OFS calls (timeouts, dropped connections, errors to connect) \
                      after which the adapter's circuit breaker opens and calls fail fast with `unavailable`.",
    },
    SettingSpec {
        name: "COREBANK_LEGACY_IN_DOUBT_MS",
        default: "60000",
        description: "How long after a lost answer the legacy core may still carry a request out (a \
                      slow core finishes what it started). Within it, the adapter does not take a \
                      refusal of a later attempt as final: it answers `unavailable` (retry later with \
                      the same request id). Must exceed the longest the core can sit on a request.",
    },
    SettingSpec {
        name: "COREBANK_LEGACY_BREAKER_OPEN_MS",
        default: "5000",
        description: "How long the circuit breaker stays open before it lets one trial call through.",
    },
    SettingSpec {
        name: "COREBANK_JWT_ISSUER",
        default: "corebank-dev",
        description: "The `iss` every token must carry (and `corebank token` writes).",
    },
    SettingSpec {
        name: "COREBANK_JWT_JWKS",
        default: "",
        description: "The JSON Web Key Set the gateway verifies RS256/ES256 tokens with: a file path or an \
                      `http(s)://` URL. Keys are chosen by `kid`, cached, and reloaded (every \
                      `COREBANK_JWT_JWKS_REFRESH_S`, and at once, at most every 10 s, on an unknown `kid`), \
                      so keys rotate without a restart. Empty: `<COREBANK_HOME>/dev-keys/jwks.json`, \
                      created with a fresh dev key pair by `corebank up` and `corebank token`; the \
                      gateway then starts only in development (`COREBANK_DEV=true`, or under `corebank up`).",
    },
    SettingSpec {
        name: "COREBANK_JWT_JWKS_CA",
        default: "",
        description: "PEM bundle of the only CA(s) an `https://` `COREBANK_JWT_JWKS` server's certificate \
                      may chain to (an identity provider behind the bank's own CA). Empty: the \
                      platform's roots.",
    },
    SettingSpec {
        name: "COREBANK_JWT_JWKS_REFRESH_S",
        default: "300",
        description: "How often the gateway reloads the JWKS.",
    },
    SettingSpec {
        name: "COREBANK_JWT_LEEWAY_S",
        default: "30",
        description: "Clock skew allowed when checking `exp` and `nbf`, in seconds.",
    },
    SettingSpec {
        name: "COREBANK_JWT_DEV_HS256_SECRET",
        default: "",
        description: "Dev mode only: when set, HS256 tokens signed with this shared secret are accepted \
                      too (algorithm pinned to the dev key `kid` = `dev-hs256`). Never set it in production.",
    },
    SettingSpec {
        name: "COREBANK_GATEWAY_MODERN_URL",
        default: "",
        description: "gRPC URL of the modern side (deposits and payments, internal listener), e.g. `https://127.0.0.1:8081`. \
                      `corebank up` sets it to its own server.",
    },
    SettingSpec {
        name: "COREBANK_GATEWAY_LEGACY_URL",
        default: "",
        description: "gRPC URL of the legacy adapter. `corebank up` sets it to its adapter's server.",
    },
    SettingSpec {
        name: "COREBANK_GATEWAY_MIGRATION_URL",
        default: "",
        description: "gRPC URL of the migration component (`/admin/v1/migrations`); unset: \
                      `COREBANK_GATEWAY_MODERN_URL`, where `corebank up` runs it.",
    },
    SettingSpec {
        name: "COREBANK_MIGRATION_GATEWAY_URL",
        default: "",
        description: "For `serve migration`: the gateway's internal gRPC URL (its account \
                      directory's moves). `corebank up` uses its own server.",
    },
    SettingSpec {
        name: "COREBANK_MIGRATION_LEGACY_URL",
        default: "",
        description: "For `serve migration`: the legacy adapter's gRPC URL (export, freeze, \
                      empty). `corebank up` sets it to its adapter's server. Modern deposits \
                      is `COREBANK_DEPOSITS_URL`.",
    },
    SettingSpec {
        name: "COREBANK_GATEWAY_BODY_MAX_BYTES",
        default: "65536",
        description: "The largest request body the gateway reads; larger ones get 413.",
    },
    SettingSpec {
        name: "COREBANK_GATEWAY_REQUEST_TIMEOUT_MS",
        default: "10000",
        description: "How long one channel or admin request may take before the gateway answers 504.",
    },
    SettingSpec {
        name: "COREBANK_GATEWAY_IDEMPOTENCY_RETENTION_H",
        default: "24",
        description: "How long a completed idempotency record (and its stored answer) is kept.",
    },
    SettingSpec {
        name: "COREBANK_GATEWAY_APPROVAL_TTL_S",
        default: "86400",
        description: "How long a four-eyes proposal (saga force-compensate or mark-resolved, payment \
                      screening decision) waits for a second operator before it expires.",
    },
    SettingSpec {
        name: "COREBANK_GATEWAY_IDEMPOTENCY_LEASE_MS",
        default: "30000",
        description: "How long a request in flight owns its idempotency key; a key whose owner crashed \
                      is taken over after this.",
    },
    SettingSpec {
        name: "COREBANK_GATEWAY_ROUTE_POLL_MS",
        default: "500",
        description: "How often every gateway replica checks for a new route table version.",
    },
    SettingSpec {
        name: "COREBANK_MIGRATION_HOLD_MS",
        default: "2000",
        description: "How long the gateway holds a channel request on an account that an account \
                      migration is moving, waiting for the move to end, before it answers 503 \
                      `account_moving` with `Retry-After` (0: answer 503 at once). At most \
                      COREBANK_GATEWAY_REQUEST_TIMEOUT_MS.",
    },
    SettingSpec {
        name: "COREBANK_GATEWAY_SHADOW_QUEUE_MAX",
        default: "1000",
        description: "Shadow requests waiting at most; when full, new shadows are dropped and counted, \
                      never slowing the primary.",
    },
];

pub(super) fn default_of(name: &str) -> &'static str {
    SETTINGS
        .iter()
        .find(|s| s.name == name)
        .map_or("", |s| s.default)
}

/// The settings table as Markdown: the body of `docs/CONFIGURATION.md`.
pub fn render_markdown() -> String {
    let mut text = String::from(
        "# Configuration\n\n\
         Every corebank process reads these environment variables once, at start. A bad value \
         stops the process with a message that names the variable and the fix; a `COREBANK_*` \
         variable that is not listed here is refused as a likely typo. `corebank config` prints \
         the same table with the values in force.\n\n\
         This file is generated from `platform/service/src/settings/catalogue.rs` \
         (`corebank config --markdown > docs/CONFIGURATION.md`); a test keeps them equal.\n\n\
         | Variable | Default | Meaning |\n|---|---|---|\n",
    );
    for spec in SETTINGS {
        let default = if spec.default.is_empty() {
            "(unset)".to_owned()
        } else {
            format!("`{}`", spec.default)
        };
        let description = spec
            .description
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        text.push_str(&format!(
            "| `{}` | {} | {} |\n",
            spec.name, default, description
        ));
    }
    text
}
