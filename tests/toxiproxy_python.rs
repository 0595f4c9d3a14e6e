//! The published Python Toxiproxy client (`toxiproxy-python`, installed by `.ci/run`) drives the
//! embedded server unchanged: create a proxy, add and remove each toxic in each stream, disable
//! and enable, reset, populate (tests/python/toxiproxy_client.py does the checks).

use pdchaos::fault::toxiproxy::RunningServer;
use std::path::PathBuf;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::process::Command;

/// `$PDCHAOS_PYTHON`, else the project's `.venv` (made here from PyPI when missing, so that
/// `cargo test` alone works on a fresh machine); it must be able to import `toxiproxy`.
fn python() -> PathBuf {
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    let venv = root.join(".venv/bin/python");
    let given = std::env::var_os("PDCHAOS_PYTHON").map(PathBuf::from);
    let imports = |p: &PathBuf| {
        std::process::Command::new(p)
            .args(["-c", "import toxiproxy"])
            .output()
            .map(|o| o.status.success())
            .unwrap_or(false)
    };
    if given.is_none() && !imports(&venv) {
        let _ = std::process::Command::new("python3")
            .args(["-m", "venv"])
            .arg(root.join(".venv"))
            .status();
        let _ = std::process::Command::new(root.join(".venv/bin/pip"))
            .args(["install", "-q", "toxiproxy-python==0.1.1"])
            .status();
    }
    let python = given.unwrap_or(venv);
    let ok = imports(&python);
    assert!(
        ok,
        "{} cannot import toxiproxy: run the install step of .ci/run \
         (python3 -m venv .venv && .venv/bin/pip install toxiproxy-python==0.1.1) \
         or set PDCHAOS_PYTHON",
        python.display()
    );
    python
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn python_client_drives_embedded_server() {
    let python = python();
    let echo = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let upstream = echo.local_addr().unwrap().to_string();
    tokio::spawn(async move {
        while let Ok((mut sock, _)) = echo.accept().await {
            tokio::spawn(async move {
                let (mut r, mut w) = sock.split();
                let _ = tokio::io::copy(&mut r, &mut w).await;
            });
        }
    });
    let server = RunningServer::start("127.0.0.1:0").await.unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/toxiproxy_client.py");
    let child = Command::new(python)
        .arg(script)
        .arg(server.addr().ip().to_string())
        .arg(server.addr().port().to_string())
        .arg(&upstream)
        .kill_on_drop(true)
        .output();
    let out = tokio::time::timeout(Duration::from_secs(120), child)
        .await
        .expect("python client did not finish in 120 s")
        .expect("cannot run python");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    eprintln!("{stdout}{stderr}");
    server.shutdown().await;
    assert!(out.status.success(), "python client failed: {stderr}");
    assert!(stdout.trim_end().ends_with("OK"), "{stdout}");
}
