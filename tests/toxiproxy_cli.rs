//! `pdchaos toxiproxy` as a process: announces its address, serves the API, populates from
//! `--config`, exits 0 on SIGTERM; bad flags and files exit 2 with a one-line message.

use pdchaos::fault::toxiproxy::ToxiproxyClient;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

const BIN: &str = env!("CARGO_BIN_EXE_pdchaos");

#[tokio::test]
async fn serves_until_sigterm_with_config_proxies() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("proxies.json");
    std::fs::write(
        &config,
        r#"[{"name":"kv","listen":"127.0.0.1:0","upstream":"127.0.0.1:9"}]"#,
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args(["toxiproxy", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let line = tokio::time::timeout(Duration::from_secs(10), lines.next_line())
        .await
        .expect("no address line in 10 s")
        .unwrap()
        .unwrap();
    let url = line
        .strip_prefix("toxiproxy listening on ")
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    let client = ToxiproxyClient::new(url);
    assert!(!client.version().await.unwrap().is_empty());
    let kv = client.get_proxy("kv").await.unwrap();
    assert!(kv.enabled && !kv.listen.ends_with(":0"), "{kv:?}");

    let pid = nix::unistd::Pid::from_raw(child.id().unwrap() as i32);
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM).unwrap();
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("no exit 10 s after SIGTERM")
        .unwrap();
    assert_eq!(status.code(), Some(0));
    assert!(
        std::net::TcpStream::connect(&kv.listen).is_err(),
        "proxy port still open after exit"
    );
}

#[tokio::test]
async fn bad_listen_and_bad_config_exit_2() {
    let out = Command::new(BIN)
        .args(["toxiproxy", "--listen", "localhost-ish"])
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("--listen localhost-ish"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("bad.json");
    std::fs::write(&config, "[{\"name\": \"x\"}]").unwrap();
    let out = Command::new(BIN)
        .args(["toxiproxy", "--listen", "127.0.0.1:0", "--config"])
        .arg(&config)
        .output()
        .await
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.json:1"), "{err}");
}
