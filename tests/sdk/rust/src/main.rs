//! `sdk-probe --endpoint URL`: one long-lived AWS SDK for Rust client, driven line by line.
//!
//! Credentials come from the SDK's default chain (`aws_config::load_defaults`), configured by
//! the environment the test sets (`AWS_SHARED_CREDENTIALS_FILE`, `AWS_CONFIG_FILE` with
//! `credential_process`, `AWS_CONTAINER_*`, `AWS_EC2_METADATA_SERVICE_ENDPOINT`). For every
//! line `call` on stdin it calls STS `GetCallerIdentity` at `URL` with the same client and
//! prints one JSON line: `{"ok":true,"arn":…,"account":…}` or `{"ok":false,"error":…}`. EOF
//! ends it. The client (and so its credentials cache) lives as long as the process.

use aws_config::BehaviorVersion;
use aws_smithy_http_client::tls::{Provider, rustls_provider::CryptoMode};
use tokio::io::{AsyncBufReadExt, BufReader};

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let endpoint = match args.as_slice() {
        [_, flag, url] if flag == "--endpoint" => url.clone(),
        _ => {
            eprintln!("usage: sdk-probe --endpoint URL");
            std::process::exit(2);
        }
    };
    let http = aws_smithy_http_client::Builder::new()
        .tls_provider(Provider::Rustls(CryptoMode::Ring))
        .build_https();
    let config = aws_config::defaults(BehaviorVersion::latest())
        .http_client(http)
        .load()
        .await;
    let sts = aws_sdk_sts::Client::from_conf(
        aws_sdk_sts::config::Builder::from(&config)
            .endpoint_url(endpoint)
            .build(),
    );
    println!("{}", serde_json::json!({"ready": true}));
    let mut lines = BufReader::new(tokio::io::stdin()).lines();
    while let Ok(Some(line)) = lines.next_line().await {
        if line.trim() != "call" {
            continue;
        }
        let out = match sts.get_caller_identity().send().await {
            Ok(r) => serde_json::json!({"ok": true, "arn": r.arn(), "account": r.account()}),
            Err(e) => serde_json::json!({
                "ok": false,
                "error": format!("{}", aws_sdk_sts::error::DisplayErrorContext(&e)),
            }),
        };
        println!("{out}");
    }
}
