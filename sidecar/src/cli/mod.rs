//! The binary's shell: client subcommands that query a running sidecar's admin port
//! (`kubectl exec <pod> -c sidecar -- haproxy-peers-sidecar peers`), and logging set-up.

pub mod client;
pub mod logging;

use std::path::PathBuf;

use serde::de::DeserializeOwned;

use crate::admin::text;
use crate::admin::views::{PeersView, TableView, TablesView};
use crate::config::{load_members, DEFAULT_CONFIG_DIR, ENV_CONFIG_DIR};
use client::AdminUrl;

pub const ENV_ADMIN_URL: &str = "HAPROXY_PEERS_ADMIN_URL";

/// Where the admin server is, and how to print its answer.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct AdminArgs {
    /// The admin server [default: http://127.0.0.1:<ports.admin from members.yaml>].
    #[arg(long, env = ENV_ADMIN_URL)]
    pub admin: Option<String>,
    /// Directory holding members.yaml, read for the default admin port.
    #[arg(long, env = ENV_CONFIG_DIR, default_value = DEFAULT_CONFIG_DIR)]
    pub config_dir: PathBuf,
    /// Print the server's JSON as received instead of a table.
    #[arg(long)]
    pub json: bool,
}

/// `peers`: every peer session, like HAProxy's `show peers`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct PeersArgs {
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// `tables [NAME] [--key K]`: definitions and counts, one table, or one entry.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub struct TablesArgs {
    /// A table's wire name (`be_rate`, or `/t1` for `table t1` in the peers section).
    pub name: Option<String>,
    /// Show this key's entry: dotted IP, decimal integer, string, or hex for binary keys.
    #[arg(long, requires = "name")]
    pub key: Option<String>,
    #[command(flatten)]
    pub admin: AdminArgs,
}

/// The output of `peers`.
pub async fn peers(args: &PeersArgs) -> Result<String, String> {
    query::<PeersView>(&args.admin, "/peers", text::peers).await
}

/// The output of `tables`.
pub async fn tables(args: &TablesArgs) -> Result<String, String> {
    match &args.name {
        None => query::<TablesView>(&args.admin, "/tables", text::tables).await,
        Some(name) => {
            let mut path = format!("/tables/{}", encode(name));
            if let Some(key) = &args.key {
                path.push_str("?key=");
                path.push_str(&encode(key));
            }
            query::<TableView>(&args.admin, &path, text::table).await
        }
    }
}

fn admin_url(args: &AdminArgs) -> Result<AdminUrl, String> {
    if let Some(url) = &args.admin {
        return AdminUrl::parse(url);
    }
    let members = load_members(&args.config_dir).map_err(|e| {
        format!("cannot find the admin port: {e}; or pass --admin http://127.0.0.1:<admin port>")
    })?;
    Ok(AdminUrl::local(members.ports.admin))
}

async fn query<T: DeserializeOwned>(
    args: &AdminArgs,
    path: &str,
    human: fn(&T) -> String,
) -> Result<String, String> {
    let base = admin_url(args)?;
    let r = client::get(&base, path, "application/json").await?;
    if r.status != 200 {
        #[derive(serde::Deserialize)]
        struct ErrorBody {
            error: String,
        }
        let why = serde_json::from_str::<ErrorBody>(&r.body)
            .map(|b| b.error)
            .unwrap_or_else(|_| r.body.trim().to_string());
        return Err(format!("{base}{path} answered {}: {why}", r.status));
    }
    if args.json {
        return Ok(r.body);
    }
    let view: T = serde_json::from_str(&r.body).map_err(|e| {
        format!(
            "{base}{path} answered JSON this command does not understand ({e}): are the sidecar \
             and this binary the same release?"
        )
    })?;
    Ok(human(&view))
}

/// Percent-encodes everything but RFC 3986 unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'.' | b'_' | b'~') {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encodes_names_and_keys() {
        assert_eq!(encode("be_rate"), "be_rate");
        assert_eq!(encode("/t1"), "%2Ft1");
        assert_eq!(encode("a b&c=d"), "a%20b%26c%3Dd");
        assert_eq!(encode("é"), "%C3%A9");
        assert_eq!(encode("10.0.0.1"), "10.0.0.1");
    }
}
