//! `corebank legacy export`: the export for migration, from the legacy adapter's
//! `LegacyExport` service to a file of JSON lines, one account per line.

use std::io::Write as _;

use anyhow::Context as _;
use corebank_api::legacy::v1 as pb;
use corebank_api::legacy::v1::legacy_export_client::LegacyExportClient;
use serde_json::json;

#[derive(Debug, clap::Subcommand)]
pub enum LegacyCommand {
    /// Stream every account of a product (balance, live holds, statement), all as of one
    /// state of the legacy books, as JSON lines.
    Export {
        /// The product code, e.g. LEGACY-CURRENT.
        #[arg(long)]
        product: String,
        /// The legacy adapter's gRPC address (default: where `corebank up` serves it,
        /// COREBANK_LEGACY_ADAPTER_ADDR).
        #[arg(long)]
        adapter: Option<String>,
        /// Where to write the lines (default: standard output).
        #[arg(long)]
        out: Option<std::path::PathBuf>,
    },
}

fn line(account: &pb::ExportedAccount) -> serde_json::Value {
    json!({
        "account_id": account.account_id,
        "legacy_account_number": account.legacy_account_number,
        "customer_id": account.customer_id,
        "legacy_customer_number": account.legacy_customer_number,
        "product_code": account.product_code,
        "currency": account.currency,
        "opened_on": account.opened_on,
        "closed_on": account.closed_on,
        "posted": account.posted,
        "held": account.held,
        "journal": account.journal,
        "holds": account.holds.iter().map(|h| json!({
            "hold_id": h.hold_id,
            "legacy_id": h.legacy_id,
            "amount": h.amount,
            "to_date": h.to_date,
        })).collect::<Vec<_>>(),
        "statement": account.statement.iter().map(|l| json!({
            "legacy_entry_id": l.legacy_entry_id,
            "reference": l.reference,
            "booking_date": l.booking_date,
            "value_date": l.value_date,
            "direction": l.direction,
            "amount": l.amount,
            "description": l.description,
            "running_balance": l.running_balance,
        })).collect::<Vec<_>>(),
    })
}

pub async fn run(
    command: LegacyCommand,
    settings: &corebank_service::Settings,
) -> anyhow::Result<()> {
    let LegacyCommand::Export {
        product,
        adapter,
        out,
    } = command;
    // The export is migration tooling: it calls the adapter with the migration certificate.
    let mode = corebank_service::internal::mode_from_settings(
        settings,
        &[corebank_service::internal::component_names::MIGRATION],
    )
    .context("loading the migration tooling's certificate (run `corebank certs`, or set COREBANK_TLS_CA/_CERT/_KEY)")?;
    let clients = corebank_components::clients_as(
        &mode,
        corebank_service::internal::component_names::MIGRATION,
    )?;
    let url = adapter
        .unwrap_or_else(|| format!("{}://{}", clients.scheme(), settings.legacy_adapter_addr));
    let channel = clients
        .endpoint(&url, corebank_service::internal::component_names::LEGACY_ADAPTER)?
        .connect()
        .await
        .with_context(|| format!("connecting to the legacy adapter at {url} (is `corebank up` or `corebank serve legacy-adapter` running? pass --adapter)"))?;
    let mut client = LegacyExportClient::new(channel);
    let mut stream = client
        .export_accounts(pb::ExportAccountsRequest {
            product_code: product.clone(),
        })
        .await
        .with_context(|| format!("starting the export of {product}"))?
        .into_inner();
    let mut writer: Box<dyn std::io::Write> = match &out {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path).with_context(|| format!("creating {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut accounts = 0_u64;
    let mut journal = 0_u64;
    while let Some(account) = stream
        .message()
        .await
        .with_context(|| format!("the export of {product} broke off after {accounts} accounts; run it again (it starts from a new state of the books)"))?
    {
        journal = account.journal;
        writeln!(writer, "{}", line(&account)).context("writing the export")?;
        accounts += 1;
        if accounts.is_multiple_of(100) {
            eprintln!("exported {accounts} accounts of {product} (as of journal {journal})");
        }
    }
    writer.flush().context("writing the export")?;
    eprintln!("exported {accounts} accounts of {product} as of legacy journal {journal}");
    Ok(())
}
