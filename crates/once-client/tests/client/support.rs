//! A tiny scripted HTTP/1.1 server: each request is recorded and answered by a closure with
//! exact bytes, so tests can send what no well-behaved framework would (truncated bodies,
//! HTML pages, dropped connections, answers slower than the client waits).

use std::sync::{Arc, Mutex};
use std::time::Duration;

use once_client::ClientError;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

#[derive(Clone, Debug)]
pub struct Seen {
    pub method: String,
    /// Path and query, e.g. `/v1/sims?page=1&pageSize=100`.
    pub target: String,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn path(&self) -> &str {
        self.target.split('?').next().unwrap_or("")
    }
}

pub enum Reply {
    /// These bytes, then the connection stays open for the next request.
    Raw(Vec<u8>),
    /// Close the connection without a word.
    Close,
    /// Wait, then answer.
    After(Duration, Vec<u8>),
}

type Handler = dyn Fn(&Seen, usize) -> Reply + Send + Sync;

pub struct Scripted {
    pub base_url: String,
    seen: Arc<Mutex<Vec<Seen>>>,
}

impl Scripted {
    /// `handler` gets each request and how many requests to the same path came before it.
    pub async fn start(handler: impl Fn(&Seen, usize) -> Reply + Send + Sync + 'static) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let base_url = format!("http://{}", listener.local_addr().unwrap());
        let seen = Arc::new(Mutex::new(Vec::new()));
        let handler: Arc<Handler> = Arc::new(handler);
        let log = seen.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                tokio::spawn(serve(stream, handler.clone(), log.clone()));
            }
        });
        Self { base_url, seen }
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.seen.lock().unwrap().clone()
    }

    pub fn count(&self, method: &str, path: &str) -> usize {
        self.seen()
            .iter()
            .filter(|s| s.method == method && s.path() == path)
            .count()
    }
}

async fn serve(mut stream: TcpStream, handler: Arc<Handler>, log: Arc<Mutex<Vec<Seen>>>) {
    let mut buffer = Vec::new();
    loop {
        let Some(seen) = read_request(&mut stream, &mut buffer).await else {
            return;
        };
        let earlier = {
            let mut log = log.lock().unwrap();
            let earlier = log
                .iter()
                .filter(|s| s.method == seen.method && s.path() == seen.path())
                .count();
            log.push(seen.clone());
            earlier
        };
        match handler(&seen, earlier) {
            Reply::Raw(bytes) => {
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
            Reply::Close => return,
            Reply::After(pause, bytes) => {
                tokio::time::sleep(pause).await;
                if stream.write_all(&bytes).await.is_err() {
                    return;
                }
            }
        }
    }
}

async fn read_request(stream: &mut TcpStream, buffer: &mut Vec<u8>) -> Option<Seen> {
    let header_end = loop {
        if let Some(at) = buffer.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buffer[..header_end]).to_string();
    let mut lines = head.split("\r\n");
    let mut request_line = lines.next()?.split(' ');
    let method = request_line.next()?.to_owned();
    let target = request_line.next()?.to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_owned(), v.trim().to_owned()))
        .collect();
    let length: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let body_start = header_end + 4;
    while buffer.len() < body_start + length {
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buffer.extend_from_slice(&chunk[..n]);
    }
    let body = buffer[body_start..body_start + length].to_vec();
    buffer.drain(..body_start + length);
    Some(Seen {
        method,
        target,
        headers,
        body,
    })
}

/// A complete answer with a correct `Content-Length`.
pub fn http(status: u16, headers: &[(&str, &str)], body: &str) -> Vec<u8> {
    let mut text = format!("HTTP/1.1 {status} X\r\ncontent-length: {}\r\n", body.len());
    for (name, value) in headers {
        text.push_str(&format!("{name}: {value}\r\n"));
    }
    text.push_str("\r\n");
    text.push_str(body);
    text.into_bytes()
}

pub fn json(status: u16, body: &str) -> Vec<u8> {
    http(status, &[("content-type", "application/json")], body)
}

pub fn token_answer(token: &str) -> Reply {
    Reply::Raw(json(
        200,
        &format!(
            r#"{{"status_code":200,"access_token":"{token}","token_type":"bearer","expires_in":3600,"userId":"user","scope":"all"}}"#
        ),
    ))
}

/// Asserts that a top-up timed out: the provider may or may not have carried it out.
#[track_caller]
pub fn assert_top_up_timed_out(error: &ClientError) {
    assert!(
        matches!(
            error,
            ClientError::Timeout {
                endpoint: "POST /v1/sims/{iccid}/topup"
            }
        ),
        "{error:?}"
    );
    assert!(error.outcome_unknown());
}
