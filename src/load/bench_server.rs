//! The server side of `pdchaos bench-client`: a minimal HTTP/1.1 SSE server on raw sockets.
//!
//! It exists to make the client's measurement error measurable. The scripted test server
//! (axum) stamps a token when it hands it to hyper, which writes it later; under 40,000 chunks/s
//! that gap, not the client, dominated the "TTFT error". Here each chunk is written with one
//! `write_all` on a `TCP_NODELAY` socket and the first-token stamp is taken *after* that write
//! returned, i.e. when the bytes were in the kernel on their way to the client: what remains
//! between it and the client's first-token time is the client's own delay.
//!
//! Streams start with a random phase within one inter-token interval, as a real server's do;
//! without it every closed-loop user would tick on the same millisecond forever.

use crate::clock;
use std::net::SocketAddr;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::{TcpListener, TcpStream};

/// What every stream looks like.
#[derive(Debug, Clone, Copy)]
pub struct Script {
    pub ttft: Duration,
    pub itl: Duration,
    pub tokens: u32,
}

/// Binds `127.0.0.1:0` and serves in the current runtime; returns the address.
pub async fn serve(script: Script) -> std::io::Result<SocketAddr> {
    let listener = TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            let _ = sock.set_nodelay(true);
            tokio::spawn(connection(sock, script));
        }
    });
    Ok(addr)
}

/// Serves requests on one keep-alive connection until the client closes it.
async fn connection(sock: TcpStream, script: Script) -> std::io::Result<()> {
    let (read, mut write) = sock.into_split();
    let mut read = BufReader::new(read);
    let mut line = String::new();
    loop {
        let mut length = 0usize;
        loop {
            line.clear();
            if read.read_line(&mut line).await? == 0 {
                return Ok(());
            }
            let l = line.trim_end();
            if l.is_empty() {
                break;
            }
            if let Some((k, v)) = l.split_once(':')
                && k.eq_ignore_ascii_case("content-length")
            {
                length = v.trim().parse().unwrap_or(0);
            }
        }
        let mut body = vec![0; length];
        read.read_exact(&mut body).await?;
        stream(&mut write, script).await?;
    }
}

fn chunk(data: &str) -> Vec<u8> {
    let event = format!("data: {data}\n\n");
    format!("{:x}\r\n{event}\r\n", event.len()).into_bytes()
}

async fn stream(w: &mut tokio::net::tcp::OwnedWriteHalf, s: Script) -> std::io::Result<()> {
    let arrival_us = clock::now_us();
    let start = tokio::time::Instant::now();
    let phase = s.itl.mul_f64(rand::random::<f64>());
    w.write_all(
        b"HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ncache-control: no-cache\r\ntransfer-encoding: chunked\r\n\r\n",
    )
    .await?;
    let token = chunk(r#"{"choices":[{"index":0,"delta":{"content":"w "},"finish_reason":null}]}"#);
    let mut first_token_us = 0;
    for i in 0..s.tokens {
        tokio::time::sleep_until(start + s.ttft + phase + s.itl * i).await;
        w.write_all(&token).await?;
        if i == 0 {
            first_token_us = clock::now_us();
        }
    }
    let end = format!(
        r#"{{"choices":[],"usage":{{"prompt_tokens":8,"completion_tokens":{}}},"x_pd":{{"arrival_us":{arrival_us},"first_token_us":{first_token_us},"last_token_us":{}}}}}"#,
        s.tokens,
        clock::now_us()
    );
    let mut tail = chunk(r#"{"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}"#);
    tail.extend(chunk(&end));
    tail.extend(chunk("[DONE]"));
    tail.extend(b"0\r\n\r\n");
    w.write_all(&tail).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_are_framed_with_their_hex_length() {
        let c = String::from_utf8(chunk("[DONE]")).unwrap();
        assert_eq!(c, "e\r\ndata: [DONE]\n\n\r\n");
    }
}
