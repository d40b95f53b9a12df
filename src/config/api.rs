//! API limits as settings: flags `--api-*` (env `QNET_API_*`, file keys `api_*`) over the
//! defaults documented on [`qnet_api::ApiConfig`].

use std::time::Duration;

use clap::Args;
use qnet_api::{ApiConfig, CorsOrigins, RateLimit};

use super::file::FileConfig;
use super::value::parse_duration;
use super::{invalid, pick_duration, ConfigError};

/// Flags of the API limits; each one is optional so the file and the defaults fill in.
#[derive(Debug, Default, Args)]
pub struct ApiArgs {
    /// Largest request body in bytes, REST or JSON-RPC [default: 1048576].
    #[arg(long, env = "QNET_API_MAX_BODY_BYTES")]
    pub api_max_body_bytes: Option<u32>,
    /// Largest JSON-RPC response in bytes [default: 10485760].
    #[arg(long, env = "QNET_API_MAX_RESPONSE_BYTES")]
    pub api_max_response_bytes: Option<u32>,
    /// Most calls in one JSON-RPC batch [default: 50].
    #[arg(long, env = "QNET_API_MAX_BATCH")]
    pub api_max_batch: Option<u32>,
    /// Most open HTTP connections, WebSockets included [default: 1024].
    #[arg(long, env = "QNET_API_MAX_CONNECTIONS")]
    pub api_max_connections: Option<u32>,
    /// Most open JSON-RPC WebSocket connections [default: 100].
    #[arg(long, env = "QNET_API_MAX_WS_CONNECTIONS")]
    pub api_max_ws_connections: Option<u32>,
    /// Most subscriptions on one WebSocket connection [default: 16].
    #[arg(long, env = "QNET_API_MAX_SUBSCRIPTIONS")]
    pub api_max_subscriptions: Option<u32>,
    /// Time allowed to answer one HTTP request [default: 10s].
    #[arg(long, env = "QNET_API_REQUEST_TIMEOUT", value_parser = parse_duration)]
    pub api_request_timeout: Option<Duration>,
    /// Time a client has to send a request's headers (slowloris guard) [default: 10s].
    #[arg(long, env = "QNET_API_HEADER_READ_TIMEOUT", value_parser = parse_duration)]
    pub api_header_read_timeout: Option<Duration>,
    /// Transaction submissions per second per client IP (`tx_send` and `POST /v1/txs`);
    /// 0 turns the limit off [default: 20].
    #[arg(long, env = "QNET_API_TX_RATE")]
    pub api_tx_rate: Option<u32>,
    /// Transaction submissions a client IP may send at once after a quiet period [default: 40].
    #[arg(long, env = "QNET_API_TX_BURST")]
    pub api_tx_burst: Option<u32>,
    /// Origins whose browser pages may call the API (REST and JSON-RPC over HTTP): a
    /// comma-separated list of `http(s)://host[:port]`, or `*` for any [default: none].
    #[arg(long, env = "QNET_API_CORS_ORIGINS")]
    pub api_cors_origins: Option<String>,
}

/// The API limits: flag, else file, else default; counts must be at least 1.
pub fn resolve(args: &ApiArgs, file: &FileConfig) -> Result<ApiConfig, ConfigError> {
    let d = ApiConfig::default();
    let count = |setting: &'static str, flag: Option<u32>, file: Option<u32>, default: u32| {
        let v = flag.or(file).unwrap_or(default);
        if v == 0 {
            return Err(invalid(setting, "must be at least 1"));
        }
        Ok(v)
    };
    let default_rate = d.tx_rate_limit.unwrap_or(RateLimit {
        per_second: 20,
        burst: 40,
    });
    let rate = args
        .api_tx_rate
        .or(file.api_tx_rate)
        .unwrap_or(default_rate.per_second);
    let burst = count(
        "--api-tx-burst",
        args.api_tx_burst,
        file.api_tx_burst,
        default_rate.burst,
    )?;
    Ok(ApiConfig {
        max_body_bytes: count(
            "--api-max-body-bytes",
            args.api_max_body_bytes,
            file.api_max_body_bytes,
            d.max_body_bytes,
        )?,
        max_response_bytes: count(
            "--api-max-response-bytes",
            args.api_max_response_bytes,
            file.api_max_response_bytes,
            d.max_response_bytes,
        )?,
        max_batch_len: count(
            "--api-max-batch",
            args.api_max_batch,
            file.api_max_batch,
            d.max_batch_len,
        )?,
        max_connections: count(
            "--api-max-connections",
            args.api_max_connections,
            file.api_max_connections,
            d.max_connections,
        )?,
        max_ws_connections: count(
            "--api-max-ws-connections",
            args.api_max_ws_connections,
            file.api_max_ws_connections,
            d.max_ws_connections,
        )?,
        max_subscriptions_per_connection: count(
            "--api-max-subscriptions",
            args.api_max_subscriptions,
            file.api_max_subscriptions,
            d.max_subscriptions_per_connection,
        )?,
        request_timeout: pick_duration(
            "--api-request-timeout",
            args.api_request_timeout,
            file.api_request_timeout.clone(),
            d.request_timeout,
        )?,
        header_read_timeout: pick_duration(
            "--api-header-read-timeout",
            args.api_header_read_timeout,
            file.api_header_read_timeout.clone(),
            d.header_read_timeout,
        )?,
        tx_rate_limit: (rate > 0).then_some(RateLimit {
            per_second: rate,
            burst,
        }),
        cors_origins: match args
            .api_cors_origins
            .as_deref()
            .or(file.api_cors_origins.as_deref())
        {
            Some(value) => {
                CorsOrigins::parse(value).map_err(|e| invalid("--api-cors-origins", e))?
            }
            None => CorsOrigins::None,
        },
        ..d
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_are_the_api_crate_defaults() {
        let c = resolve(&ApiArgs::default(), &FileConfig::default()).unwrap();
        assert_eq!(c, ApiConfig::default());
    }

    #[test]
    fn flag_beats_file_and_zero_is_refused() {
        let args = ApiArgs {
            api_max_batch: Some(7),
            api_request_timeout: Some(Duration::from_secs(3)),
            ..ApiArgs::default()
        };
        let file = FileConfig {
            api_max_batch: Some(9),
            api_max_ws_connections: Some(5),
            api_header_read_timeout: Some("2s".into()),
            ..FileConfig::default()
        };
        let c = resolve(&args, &file).unwrap();
        assert_eq!(c.max_batch_len, 7);
        assert_eq!(c.max_ws_connections, 5);
        assert_eq!(c.request_timeout, Duration::from_secs(3));
        assert_eq!(c.header_read_timeout, Duration::from_secs(2));
        let zero = ApiArgs {
            api_max_body_bytes: Some(0),
            ..ApiArgs::default()
        };
        let err = resolve(&zero, &FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("--api-max-body-bytes"), "{err}");
        let bad = FileConfig {
            api_request_timeout: Some("soon".into()),
            ..FileConfig::default()
        };
        assert!(resolve(&ApiArgs::default(), &bad).is_err());
    }

    #[test]
    fn cors_origins_from_flag_or_file_and_a_bad_one_is_refused() {
        let file = FileConfig {
            api_cors_origins: Some("https://wallet.example".into()),
            ..FileConfig::default()
        };
        assert_eq!(
            resolve(&ApiArgs::default(), &file).unwrap().cors_origins,
            CorsOrigins::List(vec!["https://wallet.example".into()])
        );
        let star = ApiArgs {
            api_cors_origins: Some("*".into()),
            ..ApiArgs::default()
        };
        assert_eq!(
            resolve(&star, &file).unwrap().cors_origins,
            CorsOrigins::Any
        );
        let bad = ApiArgs {
            api_cors_origins: Some("wallet.example".into()),
            ..ApiArgs::default()
        };
        let err = resolve(&bad, &FileConfig::default()).unwrap_err();
        assert!(err.to_string().contains("--api-cors-origins"), "{err}");
    }

    #[test]
    fn tx_rate_zero_turns_the_limit_off() {
        let off = ApiArgs {
            api_tx_rate: Some(0),
            ..ApiArgs::default()
        };
        assert_eq!(
            resolve(&off, &FileConfig::default()).unwrap().tx_rate_limit,
            None
        );
        let on = ApiArgs {
            api_tx_rate: Some(5),
            api_tx_burst: Some(6),
            ..ApiArgs::default()
        };
        assert_eq!(
            resolve(&on, &FileConfig::default()).unwrap().tx_rate_limit,
            Some(RateLimit {
                per_second: 5,
                burst: 6
            })
        );
    }
}
