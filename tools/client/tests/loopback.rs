//! The client against a tiny HTTP server on 127.0.0.1 that speaks the service contract.
//! Each server handles a bounded number of connections and stops when dropped.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use repute_client::participation::Queue;
use repute_client::{Budget, CloudClient, CloudOptions, CloudStatus};
use repute_stats::{Day, DigestType, ReportedVerdict};
use serde_json::{json, Value};

#[derive(Debug, Clone)]
struct Request {
    method: String,
    path: String,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Request {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

struct Reply {
    status: u16,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn json_reply(status: u16, body: Value) -> Reply {
    Reply {
        status,
        headers: vec![("X-Repute-Cloud", "enabled".into())],
        body: body.to_string().into_bytes(),
    }
}

type Handler = Arc<dyn Fn(&Request) -> Option<Reply> + Send + Sync>;

struct Server {
    url: String,
    stop: Arc<AtomicBool>,
    seen: Arc<Mutex<Vec<Request>>>,
    thread: Option<JoinHandle<()>>,
}

impl Server {
    /// Serves at most `max_connections` connections; a handler answering `None` holds the
    /// connection without replying until the server stops (a hung service).
    fn start(max_connections: usize, handler: Handler) -> Server {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let stop = Arc::new(AtomicBool::new(false));
        let seen = Arc::new(Mutex::new(Vec::new()));
        let (stop2, seen2) = (stop.clone(), seen.clone());
        let thread = std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut served = 0;
            let mut workers = Vec::new();
            while served < max_connections
                && !stop2.load(Ordering::SeqCst)
                && Instant::now() < deadline
            {
                match listener.accept() {
                    Ok((stream, _)) => {
                        served += 1;
                        let (h, s, st) = (handler.clone(), seen2.clone(), stop2.clone());
                        workers.push(std::thread::spawn(move || serve(stream, &*h, &s, &st)));
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(5)),
                }
            }
            for w in workers {
                let _ = w.join();
            }
        });
        Server {
            url,
            stop,
            seen,
            thread: Some(thread),
        }
    }

    fn requests(&self) -> Vec<Request> {
        self.seen.lock().unwrap().clone()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn serve(
    stream: TcpStream,
    handler: &dyn Fn(&Request) -> Option<Reply>,
    seen: &Mutex<Vec<Request>>,
    stop: &AtomicBool,
) {
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut line = String::new();
    if reader.read_line(&mut line).is_err() {
        return;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().unwrap_or("").to_string();
    let path = parts.next().unwrap_or("").to_string();
    let mut headers = Vec::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).is_err() || h.trim().is_empty() {
            break;
        }
        if let Some((n, v)) = h.trim_end().split_once(':') {
            headers.push((n.trim().to_string(), v.trim().to_string()));
        }
    }
    let len: usize = headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("content-length"))
        .and_then(|(_, v)| v.parse().ok())
        .unwrap_or(0);
    let mut body = vec![0; len.min(16 << 20)];
    if reader.read_exact(&mut body).is_err() {
        return;
    }
    let request = Request {
        method,
        path,
        headers,
        body,
    };
    seen.lock().unwrap().push(request.clone());
    let Some(reply) = handler(&request) else {
        while !stop.load(Ordering::SeqCst) {
            std::thread::sleep(Duration::from_millis(5));
        }
        return;
    };
    let mut out = stream;
    let mut head = format!("HTTP/1.1 {} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n", reply.status, reply.body.len());
    for (n, v) in &reply.headers {
        head.push_str(&format!("{n}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = out.write_all(head.as_bytes());
    let _ = out.write_all(&reply.body);
}

const BAD: &str = "44d88612fea8a8f36de82e1278abb02f";

/// `POST /v1/lookup` as the contract says: one result per query, in order.
fn lookup_service(cloud: &'static str) -> Handler {
    Arc::new(move |r: &Request| {
        if r.method != "POST" || r.path != "/v1/lookup" {
            return Some(json_reply(404, json!({"error": "not found"})));
        }
        let body: Value = serde_json::from_slice(&r.body).unwrap();
        let results: Vec<Value> = body["queries"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| {
                let q = q.as_str().unwrap();
                if q == BAD {
                    json!({"query": q, "type": "md5", "verdict": "malicious", "name": "Eicar", "repute:source": "snapshot", "extra": 1})
                } else {
                    json!({"query": q, "type": "sha256", "verdict": "unknown", "repute:wanted": true})
                }
            })
            .collect();
        let mut reply = json_reply(
            200,
            json!({"results": results, "cloud": if cloud == "restricted" { "enabled with restrictions (urls only, 60/min)" } else { "enabled" }}),
        );
        reply.headers = vec![("X-Repute-Cloud", cloud.to_string())];
        Some(reply)
    })
}

fn dead_url() -> String {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}", l.local_addr().unwrap());
    drop(l);
    url
}

fn queries() -> Vec<String> {
    vec![BAD.to_string(), "ab".repeat(32), "cd".repeat(32)]
}

#[test]
fn bulk_lookup_answers_in_order_in_one_request() {
    let server = Server::start(4, lookup_service("enabled"));
    let client = CloudClient::new(CloudOptions::new(vec![server.url.clone()]));
    let answers = client.lookup(&queries());
    assert_eq!(answers.len(), 3);
    let a = answers[0].as_ref().unwrap();
    assert_eq!(
        (a.verdict.as_deref(), a.name.as_deref()),
        (Some("malicious"), Some("Eicar"))
    );
    assert!(answers[1].as_ref().unwrap().wanted);
    assert_eq!(answers[2].as_ref().unwrap().query, "cd".repeat(32));
    assert_eq!(server.requests().len(), 1);
    assert_eq!(client.status(), CloudStatus::Enabled);
    assert_eq!(client.status().line(), None);
}

#[test]
fn batches_respect_the_size_and_the_concurrency_cap() {
    let server = Server::start(8, lookup_service("enabled"));
    let mut options = CloudOptions::new(vec![server.url.clone()]);
    options.batch = 1;
    options.concurrency = 2;
    let client = CloudClient::new(options);
    let answers = client.lookup(&queries());
    assert!(answers.iter().all(Option::is_some));
    assert_eq!(server.requests().len(), 3);
}

#[test]
fn services_are_tried_in_order() {
    let server = Server::start(4, lookup_service("enabled"));
    let client = CloudClient::new(CloudOptions::new(vec![dead_url(), server.url.clone()]));
    let answers = client.lookup(&queries());
    assert!(answers.iter().all(Option::is_some));
    assert_eq!(client.status(), CloudStatus::Enabled);
}

#[test]
fn offline_gives_no_answers_and_a_status_line() {
    let client = CloudClient::new(CloudOptions::new(vec![dead_url(), dead_url()]));
    let answers = client.lookup(&queries());
    assert!(answers.iter().all(Option::is_none));
    let line = client.status().line().unwrap();
    assert!(line.starts_with("cloud: unavailable"), "{line}");
}

#[test]
fn a_hung_service_times_out() {
    let hung = Server::start(2, Arc::new(|_: &Request| None));
    let mut options = CloudOptions::new(vec![hung.url.clone()]);
    options.timeout = Duration::from_millis(200);
    let client = CloudClient::new(options);
    let answers = client.lookup(&queries());
    assert!(answers.iter().all(Option::is_none));
    assert!(client
        .status()
        .line()
        .unwrap()
        .starts_with("cloud: unavailable"));
}

#[test]
fn restricted_service_is_reported() {
    let server = Server::start(4, lookup_service("restricted"));
    let client = CloudClient::new(CloudOptions::new(vec![server.url.clone()]));
    let answers = client.lookup(&queries());
    assert!(answers.iter().all(Option::is_some));
    let line = client.status().line().unwrap();
    assert!(
        line.starts_with("cloud: enabled with restrictions"),
        "{line}"
    );
}

#[test]
fn the_budget_bounds_requests() {
    let server = Server::start(8, lookup_service("enabled"));
    let mut options = CloudOptions::new(vec![server.url.clone()]);
    options.batch = 1;
    options.concurrency = 1;
    options.budget = Budget {
        max_requests: 1,
        max_time: Duration::from_secs(60),
    };
    let client = CloudClient::new(options);
    let answers = client.lookup(&queries());
    assert_eq!(answers.iter().filter(|a| a.is_some()).count(), 1);
    assert_eq!(server.requests().len(), 1);
    assert!(client.status().line().unwrap().contains("budget"));
}

fn range_service(ttl: u64) -> Handler {
    Arc::new(move |r: &Request| {
        let rest = r.path.strip_prefix("/v1/range/")?;
        let (kind, prefix) = rest.split_once('/')?;
        let entries: Vec<Value> = if kind == "sha256" && prefix == "abcde" {
            vec![
                json!({"fingerprint": format!("abcde{}", "1".repeat(27)), "verdict": "malicious", "name": "Win.Test"}),
                json!({"fingerprint": format!("abcde{}", "2".repeat(27)), "verdict": "trusted"}),
            ]
        } else {
            vec![]
        };
        Some(json_reply(
            200,
            json!({"kind": kind, "prefix": prefix, "ttl": ttl, "entries": entries, "padding": "xxxx"}),
        ))
    })
}

#[test]
fn private_lookups_ask_by_range_and_cache_it() {
    let server = Server::start(8, range_service(600));
    let mut options = CloudOptions::new(vec![server.url.clone()]);
    options.private_lookups = true;
    let client = CloudClient::new(options);
    let known = format!("abcde{}", "1".repeat(59));
    let other_same_range = format!("abcde{}", "3".repeat(59));
    let other_range = "f".repeat(40);
    let answers = client.lookup(&[
        known.clone(),
        other_same_range,
        other_range,
        "http://example.com/".into(),
    ]);
    let a = answers[0].as_ref().unwrap();
    assert_eq!(
        (a.verdict.as_deref(), a.name.as_deref()),
        (Some("malicious"), Some("Win.Test"))
    );
    assert_eq!(a.query, known);
    assert_eq!(
        answers[1].as_ref().unwrap().verdict.as_deref(),
        Some("unknown")
    );
    assert_eq!(
        answers[2].as_ref().unwrap().verdict.as_deref(),
        Some("unknown")
    );
    assert!(answers[3].is_none(), "URLs are not asked privately");
    let paths: Vec<String> = server.requests().iter().map(|r| r.path.clone()).collect();
    assert_eq!(paths, ["/v1/range/sha256/abcde", "/v1/range/sha1/fffff"]);
    assert!(
        paths.iter().all(|p| !p.contains(&known)),
        "the full digest never leaves"
    );
    client.lookup(&[known]);
    assert_eq!(server.requests().len(), 2, "cached for its TTL");
    assert_eq!(client.cached_ranges(), 2);
}

#[test]
fn ranges_without_ttl_are_not_cached() {
    let server = Server::start(8, range_service(0));
    let mut options = CloudOptions::new(vec![server.url.clone()]);
    options.private_lookups = true;
    let client = CloudClient::new(options);
    let d = format!("abcde{}", "1".repeat(59));
    client.lookup(std::slice::from_ref(&d));
    client.lookup(&[d]);
    assert_eq!(server.requests().len(), 2);
}

const TODAY: Day = Day(20_600);

/// `POST /v1/statistics` through the stats crate's own intake.
fn statistics_service(refuse: bool) -> Handler {
    Arc::new(move |r: &Request| {
        if refuse {
            return Some(json_reply(422, json!({"error": "no"})));
        }
        let gzip = r.header("content-encoding") == Some("gzip");
        match repute_stats::decode_submission(&r.body, gzip, &Default::default(), TODAY) {
            Ok(_) => Some(json_reply(200, json!({"accepted": true}))),
            Err(e) => Some(json_reply(e.status(), json!({"error": e.to_string()}))),
        }
    })
}

#[test]
fn queued_reports_are_sent_compressed_and_cleared() {
    let server = Server::start(4, statistics_service(false));
    let client = CloudClient::new(CloudOptions::new(vec![server.url.clone()]));
    let mut q = Queue::default();
    q.record(
        TODAY,
        5,
        DigestType::Sha256,
        &"ab".repeat(32),
        ReportedVerdict::Unknown,
    )
    .unwrap();
    q.record(TODAY, 5, DigestType::Md5, BAD, ReportedVerdict::Malicious)
        .unwrap();
    let out = q.send(&client, TODAY, 1_000);
    assert_eq!(
        (out.sent, out.items, out.refused),
        (1, 2, 0),
        "{:?}",
        out.errors
    );
    let reqs = server.requests();
    assert_eq!(reqs[0].header("content-encoding"), Some("gzip"));
    assert!(q.pending(TODAY).is_empty());
    assert!(!q.due(1_000 + 59 * 60, 60));
    assert!(q.due(1_000 + 60 * 60, 60));
}

#[test]
fn unreachable_keeps_the_queue_refused_drops_it() {
    let client = CloudClient::new(CloudOptions::new(vec![dead_url()]));
    let mut q = Queue::default();
    q.record(TODAY, 5, DigestType::Md5, BAD, ReportedVerdict::Malicious)
        .unwrap();
    let out = q.send(&client, TODAY, 1_000);
    assert_eq!(out.sent, 0);
    assert_eq!(q.pending(TODAY).len(), 1, "kept for the next try");
    let server = Server::start(2, statistics_service(true));
    let client = CloudClient::new(CloudOptions::new(vec![server.url.clone()]));
    let out = q.send(&client, TODAY, 1_000);
    assert_eq!(out.refused, 1);
    assert!(q.pending(TODAY).is_empty(), "a refused report is dropped");
}
