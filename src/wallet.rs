//! `qnet-node wallet` and `qnet-node chain-spec`: account keys, addresses, balances and
//! locally signed transfers submitted over JSON-RPC; chain spec files for `--chain`.

use std::path::Path;
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, Context};
use serde_json::{json, Value};

use crate::chain::spec::ChainSpec;
use crate::chain::tx::{Address, Transfer};
use crate::config::{ChainSpecArgs, WalletCommand};
use crate::identity::{to_hex, Identity};

/// How long `wallet send --wait` waits for inclusion.
const WAIT_FOR_INCLUSION: Duration = Duration::from_secs(60);

/// The address of an account key.
pub fn address_of(identity: &Identity) -> Address {
    Address::from_public_key(identity.public_key().as_bytes())
}

/// Loads an account key file; a missing file gets a hint (one line, no repeated cause).
fn load_key(path: &Path) -> anyhow::Result<Identity> {
    if !path.exists() {
        bail!(
            "key file {} not found; create one with qnet-node wallet new --out {}",
            path.display(),
            path.display()
        );
    }
    Identity::load(path).map_err(|e| anyhow!("{e}"))
}

/// Parses `ADDRESS=AMOUNT`.
pub fn parse_balance(text: &str) -> anyhow::Result<(String, u64)> {
    let (address, amount) = text
        .split_once('=')
        .ok_or_else(|| anyhow!("--balance {text:?} is not ADDRESS=AMOUNT"))?;
    let address = Address::parse(address.trim())
        .map_err(|e| anyhow!("--balance {text:?}: {e}"))?
        .to_string();
    let amount = amount
        .trim()
        .parse()
        .map_err(|_| anyhow!("--balance {text:?}: amount is not a whole number"))?;
    Ok((address, amount))
}

/// Builds and validates a spec from `chain-spec` flags.
pub fn build_spec(args: &ChainSpecArgs, now_ms: u64) -> anyhow::Result<ChainSpec> {
    let balances = args
        .balances
        .iter()
        .map(|b| parse_balance(b))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let spec = ChainSpec {
        chain_id: args.chain_id.clone(),
        genesis_time_ms: args.genesis_time_ms.unwrap_or(now_ms - now_ms % 1_000),
        slot_ms: args.slot_ms,
        producers: args
            .producers
            .iter()
            .map(|p| p.trim().to_lowercase())
            .collect(),
        balances,
    };
    spec.validate()?;
    Ok(spec)
}

/// `qnet-node chain-spec`: writes the spec and prints its genesis hash.
pub fn chain_spec(args: &ChainSpecArgs, now_ms: u64) -> anyhow::Result<()> {
    let spec = build_spec(args, now_ms)?;
    std::fs::write(&args.out, spec.to_json())
        .with_context(|| format!("cannot write {}", args.out.display()))?;
    println!("chain_id {}", spec.chain_id);
    println!("genesis {}", to_hex(&spec.genesis_hash()));
    println!("written {}", args.out.display());
    Ok(())
}

/// Runs a wallet subcommand.
pub async fn run(command: WalletCommand) -> anyhow::Result<()> {
    match command {
        WalletCommand::New { out } => {
            if out.exists() {
                bail!("{} exists; choose another --out", out.display());
            }
            let identity = Identity::generate();
            identity.write_key_file(&out)?;
            println!("address {}", address_of(&identity));
            println!("key_file {}", out.display());
            Ok(())
        }
        WalletCommand::Address { key } => {
            println!("{}", address_of(&load_key(&key)?));
            Ok(())
        }
        WalletCommand::Balance { rpc, address, key } => {
            let address = match address {
                Some(a) => Address::parse(a.trim()).map_err(|e| anyhow!("--address: {e}"))?,
                None => address_of(&load_key(&key)?),
            };
            let account = call(&rpc, "account_get", json!([address.to_string()])).await?;
            println!("address {address}");
            println!("balance {}", account["balance"].as_u64().unwrap_or(0));
            println!("nonce {}", account["nonce"].as_u64().unwrap_or(0));
            println!(
                "pending_nonce {}",
                account["pending_nonce"].as_u64().unwrap_or(0)
            );
            Ok(())
        }
        WalletCommand::Send {
            key,
            to,
            amount,
            fee,
            rpc,
            wait,
        } => send(&key, &to, amount, fee, &rpc, wait).await,
    }
}

async fn send(
    key: &Path,
    to: &str,
    amount: u64,
    fee: u64,
    rpc: &str,
    wait: bool,
) -> anyhow::Result<()> {
    let identity = load_key(key)?;
    let to = Address::parse(to.trim()).map_err(|e| anyhow!("--to: {e}"))?;
    let from = address_of(&identity);
    let status = call(rpc, "node_status", json!([])).await?;
    let chain_id = status["chain_id"]
        .as_str()
        .ok_or_else(|| anyhow!("node_status has no chain_id"))?
        .to_string();
    let account = call(rpc, "account_get", json!([from.to_string()])).await?;
    let nonce = account["pending_nonce"].as_u64().unwrap_or(0);
    let tx = Transfer {
        chain_id,
        from: identity.public_key().to_bytes(),
        to,
        amount,
        fee,
        nonce,
    }
    .sign(identity.signing_key());
    let hash = call(rpc, "tx_send", json!([to_hex(&tx.encode())])).await?;
    let hash = hash
        .as_str()
        .ok_or_else(|| anyhow!("tx_send returned no hash"))?
        .to_string();
    println!("{hash}");
    if !wait {
        return Ok(());
    }
    let started = Instant::now();
    while started.elapsed() < WAIT_FOR_INCLUSION {
        let found = call(rpc, "tx_get", json!([hash])).await?;
        if found["status"] == "included" {
            println!(
                "included at height {}",
                found["block_height"].as_u64().unwrap_or(0)
            );
            return Ok(());
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    bail!("transfer {hash} not included after {WAIT_FOR_INCLUSION:?}")
}

/// One JSON-RPC call; returns `result` or the error as a message.
pub async fn call(url: &str, method: &str, params: Value) -> anyhow::Result<Value> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()?;
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": method, "params": params});
    let answer: Value = client
        .post(url)
        .json(&body)
        .send()
        .await
        .with_context(|| format!("cannot reach {url}"))?
        .json()
        .await
        .with_context(|| format!("{url} sent no json-rpc answer"))?;
    if let Some(err) = answer.get("error") {
        let message = err["message"].as_str().unwrap_or("error");
        let data = err
            .get("data")
            .map(|d| format!(" ({d})"))
            .unwrap_or_default();
        bail!("{method}: {message}{data}");
    }
    Ok(answer.get("result").cloned().unwrap_or(Value::Null))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(producers: Vec<String>, balances: Vec<String>) -> ChainSpecArgs {
        ChainSpecArgs {
            producers,
            balances,
            chain_id: "c".into(),
            slot_ms: 500,
            genesis_time_ms: None,
            out: "x.json".into(),
        }
    }

    #[test]
    fn spec_from_flags() {
        let p = Identity::generate();
        let a = address_of(&Identity::generate());
        let spec = build_spec(
            &args(
                vec![to_hex(p.public_key().as_bytes()).to_uppercase()],
                vec![format!("{a}=500")],
            ),
            12_345,
        )
        .unwrap();
        assert_eq!(spec.genesis_time_ms, 12_000);
        assert_eq!(spec.slot_ms, 500);
        assert_eq!(spec.balances, vec![(a.to_string(), 500)]);
        assert_eq!(spec.producer_keys(), vec![p.public_key().to_bytes()]);
    }

    #[test]
    fn bad_flags_are_errors() {
        let p = to_hex(Identity::generate().public_key().as_bytes());
        let a = address_of(&Identity::generate());
        assert!(build_spec(&args(vec!["zz".into()], vec![]), 0).is_err());
        assert!(build_spec(&args(vec![p.clone()], vec![format!("{a}")]), 0).is_err());
        assert!(build_spec(&args(vec![p.clone()], vec![format!("{a}=x")]), 0).is_err());
        assert!(build_spec(&args(vec![p], vec!["q12=5".into()]), 0).is_err());
    }

    #[test]
    fn key_file_errors_are_one_clear_line() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("none.key");
        let err = format!("{:#}", load_key(&missing).unwrap_err());
        assert!(
            err.contains("not found") && err.contains("wallet new"),
            "{err}"
        );
        let bad = dir.path().join("bad.key");
        std::fs::write(&bad, "zz").unwrap();
        let err = format!("{:#}", load_key(&bad).unwrap_err());
        assert!(err.contains("malformed"), "{err}");
        let good = dir.path().join("good.key");
        let id = Identity::generate();
        id.write_key_file(&good).unwrap();
        assert_eq!(address_of(&load_key(&good).unwrap()), address_of(&id));
    }
}
