//! A load tool for the broadcast server: N WebSocket clients subscribed to
//! one channel, events published through the signed HTTP API, and the
//! publish → receive latency every client sees, with the server's memory.
//!
//! ```sh
//! cargo run --release --example broadcast_load --features broadcast -- --clients 10000 --messages 100
//! cargo run --release --example broadcast_load --features broadcast,redis -- --clients 1000 --nodes 2
//! ```
//!
//! The server runs in a process of its own (this binary with `serve`), so
//! its resident memory (`VmRSS`) is measured apart from the clients'. With
//! `--nodes 2` two servers share a Redis (`EVENTS_TEST_REDIS_URL`, default
//! `redis://127.0.0.1:6379`) under a fresh prefix; clients are split
//! between them and events are published on the first. The open-files
//! limit is raised here, for this run, not in the library. Everything
//! stays on 127.0.0.1, bounded in count and time.
//!
//! `--bare` runs the same clients against the floor instead: a server of
//! a few dozen lines (`serve-bare`) that answers the handshake and the
//! subscription, then writes each event as one prepared WebSocket frame to
//! every socket from a task per socket, with no protocol, hub or HTTP API
//! (events come in on a plain control socket). Its figures are what this
//! machine's loopback and two cores allow any server; run it beside the
//! real one.

use std::io::BufRead;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use events::broadcast::{App, Broadcaster};
use futures_util::{SinkExt, StreamExt};
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt};
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

const ID: &str = "load";
const KEY: &str = "load-key";
const SECRET: &str = "load-secret";
const CHANNEL: &str = "bench";

struct Args {
    clients: usize,
    messages: usize,
    every: Duration,
    nodes: usize,
    bare: bool,
}

fn args() -> Result<Args, String> {
    let mut args = Args {
        clients: 1000,
        messages: 100,
        every: Duration::from_millis(20),
        nodes: 1,
        bare: false,
    };
    let mut given = std::env::args().skip(1);
    while let Some(flag) = given.next() {
        let mut value = || given.next().ok_or(format!("{flag} needs a value"));
        match flag.as_str() {
            "--clients" => {
                args.clients = value()?.parse().map_err(|e| format!("--clients: {e}"))?
            }
            "--messages" => {
                args.messages = value()?.parse().map_err(|e| format!("--messages: {e}"))?;
            }
            "--every-ms" => {
                args.every = Duration::from_millis(
                    value()?.parse().map_err(|e| format!("--every-ms: {e}"))?,
                );
            }
            "--nodes" => args.nodes = value()?.parse().map_err(|e| format!("--nodes: {e}"))?,
            "--bare" => args.bare = true,
            other => return Err(format!("unknown argument {other}")),
        }
    }
    if !(1..=2).contains(&args.nodes) || args.clients == 0 || args.messages == 0 {
        return Err("--nodes is 1 or 2; --clients and --messages at least 1".into());
    }
    if args.bare && args.nodes != 1 {
        return Err("--bare runs one node".into());
    }
    Ok(args)
}

/// Raises the open-files limit for this process and the servers it starts
/// (they inherit it): to `want` where the system lets (root may raise the
/// hard limit too), else to the hard limit. Returns the limit in force.
fn raise_open_files(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit and setrlimit only read and write the struct
    // given, which lives on this stack frame for every call.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 0;
        }
        let raised = libc::rlimit {
            rlim_cur: want.max(limit.rlim_cur),
            rlim_max: want.max(limit.rlim_max),
        };
        if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
            return raised.rlim_cur;
        }
        limit.rlim_cur = limit.rlim_max;
        libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        let _ = libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit);
    }
    limit.rlim_cur
}

/// `serve [redis-url]`: one server, its port on stdout, until stdin closes.
async fn serve(redis: Option<String>) {
    let builder = Broadcaster::builder()
        .app(App::new(ID, KEY, SECRET))
        .client_events_per_second(0);
    #[cfg(feature = "redis")]
    let builder = match redis {
        Some(url) => builder.redis(
            events::broadcast::RedisFanout::connect(&url)
                .await
                .expect("the Redis for two nodes"),
        ),
        None => builder,
    };
    #[cfg(not(feature = "redis"))]
    assert!(redis.is_none(), "two nodes need the redis feature");
    let broadcaster = builder.build().expect("the server builds");
    let listener = bind_and_say("port").await;
    let router = broadcaster.router();
    // As `cli serve` does: small frames leave at once (no Nagle delay).
    use events::broadcast::axum::serve::ListenerExt as _;
    let listener = listener.tap_io(|tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { events::broadcast::axum::serve(listener, router).await });
    until_stdin_closes().await;
}

/// Binds a free port on 127.0.0.1 and says it on stdout as `{what} P`,
/// for the driver ([`start_node`]).
async fn bind_and_say(what: &str) -> tokio::net::TcpListener {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("a free port");
    println!(
        "{what} {}",
        listener.local_addr().expect("its address").port()
    );
    listener
}

/// Returns when the driver closes this server's stdin (or dies).
async fn until_stdin_closes() {
    let _ = tokio::task::spawn_blocking(|| {
        let mut line = String::new();
        while std::io::stdin().read_line(&mut line).is_ok_and(|n| n > 0) {}
    })
    .await;
}

/// `serve-bare`: the floor. Answers the WebSocket handshake and the
/// client's subscription, then writes each event, read as a line of
/// digits (the driver's clock) from a control socket, as one prepared
/// text frame straight to every socket's `TcpStream`, from a task per
/// socket woken through a channel. Says `port P` then `control C`.
async fn serve_bare() {
    let listener = bind_and_say("port").await;
    let control = bind_and_say("control").await;
    let sockets: Arc<Mutex<Vec<Outbox>>> = Arc::default();
    let accepting = sockets.clone();
    tokio::spawn(async move {
        let config = WebSocketConfig::default()
            .read_buffer_size(4 * 1024)
            .write_buffer_size(0);
        while let Ok((tcp, _)) = listener.accept().await {
            let _ = tcp.set_nodelay(true);
            let sockets = accepting.clone();
            tokio::spawn(async move {
                let Ok(mut ws) =
                    tokio_tungstenite::accept_async_with_config(tcp, Some(config)).await
                else {
                    return;
                };
                // The client's pusher:subscribe, answered as the server does.
                let _ = ws.next().await;
                let succeeded = format!(
                    r#"{{"event":"pusher_internal:subscription_succeeded","channel":"{CHANNEL}","data":"{{}}"}}"#
                );
                if ws.send(Message::Text(succeeded.into())).await.is_err() {
                    return;
                }
                let (tx, mut rx) = tokio::sync::mpsc::channel::<Arc<[u8]>>(256);
                sockets.lock().expect("the sockets").push(tx);
                // Nothing of tungstenite's is buffered (no write buffer,
                // the send above flushed): frames go to the socket as is.
                while let Some(frame) = rx.recv().await {
                    if ws.get_mut().write_all(&frame).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    tokio::spawn(async move {
        let (control, _) = control.accept().await.expect("the driver");
        fan_out(control, sockets).await;
    });
    until_stdin_closes().await;
}

/// The bare server's fan-out: each line from `control` to every socket.
async fn fan_out(control: tokio::net::TcpStream, sockets: Arc<Mutex<Vec<Outbox>>>) {
    let mut lines = tokio::io::BufReader::new(control).lines();
    while let Ok(Some(sent)) = lines.next_line().await {
        let text = format!(r#"{{"event":"tick","channel":"{CHANNEL}","data":"{{\"t\":{sent}}}"}}"#);
        // An unmasked text frame (server to client), 7- or 16-bit length.
        let mut frame = vec![0x81];
        match u16::try_from(text.len()) {
            Ok(len) if len < 126 => frame.push(len as u8),
            Ok(len) => {
                frame.push(126);
                frame.extend_from_slice(&len.to_be_bytes());
            }
            Err(_) => panic!("a tick is a short frame"),
        }
        frame.extend_from_slice(text.as_bytes());
        let frame: Arc<[u8]> = frame.into();
        let outboxes = sockets.lock().expect("the sockets").clone();
        for outbox in &outboxes {
            let _ = outbox.try_send(frame.clone());
        }
    }
}

/// A bare socket's queue of frames.
type Outbox = tokio::sync::mpsc::Sender<Arc<[u8]>>;

struct Node {
    child: std::process::Child,
    port: u16,
    /// `--bare`: the bare server's control port.
    control: Option<u16>,
}

fn start_node(redis: Option<&str>, bare: bool) -> Node {
    let mut command = std::process::Command::new(std::env::current_exe().expect("this binary"));
    command.arg(if bare { "serve-bare" } else { "serve" });
    if let Some(url) = redis {
        command.arg(url);
    }
    let mut child = command
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .expect("the server starts");
    let stdout = child.stdout.take().expect("its stdout");
    let mut lines = std::io::BufReader::new(stdout).lines();
    let mut said = |what: &str| {
        lines
            .find_map(|l| l.ok()?.strip_prefix(what)?.trim().parse().ok())
            .expect("the server says its ports")
    };
    let port = said("port ");
    let control = bare.then(|| said("control "));
    Node {
        child,
        port,
        control,
    }
}

/// The server's resident memory, in KiB.
fn rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        })
        .unwrap_or(0)
}

/// The CPU time `pid` has used (user and system), in seconds: less
/// sensitive than wall-clock time to other programs sharing the cores.
fn cpu_seconds(pid: u32) -> f64 {
    // SAFETY: sysconf only reads a system constant.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|stat| {
            // Fields after the command's `)`: state is the first, utime
            // the 12th, stime the 13th.
            let rest = &stat[stat.rfind(')')? + 2..];
            let fields: Vec<&str> = rest.split(' ').collect();
            let user: f64 = fields.get(11)?.parse().ok()?;
            let system: f64 = fields.get(12)?.parse().ok()?;
            Some((user + system) / ticks)
        })
        .unwrap_or(0.0)
}

/// Publishes through the signed HTTP API; `sent` is the driver's clock.
async fn publish(port: u16, sent: u128) {
    let body = serde_json::json!({
        "name": "tick",
        "channel": CHANNEL,
        "data": format!("{{\"t\":{sent}}}"),
    })
    .to_string();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let path = format!("/apps/{ID}/events");
    let query = events::broadcast::sign::signed_query(
        KEY,
        SECRET,
        "POST",
        &path,
        &[],
        body.as_bytes(),
        now,
    );
    let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connects to publish");
    let request = format!(
        "POST {path}?{query} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream
        .write_all(request.as_bytes())
        .await
        .expect("publishes");
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response).await;
    assert!(
        response.starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&response)
    );
}

/// Deletes the keys the two nodes left under their prefix (their beats).
fn clean_redis(url: &str) {
    let Some((base, prefix)) = url.split_once("?prefix=") else {
        return;
    };
    let Ok(client) = redis::Client::open(base) else {
        return;
    };
    let Ok(mut conn) = client.get_connection() else {
        return;
    };
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}:*"))
        .query(&mut conn)
        .unwrap_or_default();
    if !keys.is_empty() {
        let _: Result<(), _> = redis::cmd("DEL").arg(&keys).query(&mut conn);
    }
}

fn percentile(sorted: &[u128], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let at = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[at] as f64 / 1e6
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut argv = std::env::args().skip(1);
    match argv.next().as_deref() {
        Some("serve") => return serve(argv.next()).await,
        Some("serve-bare") => return serve_bare().await,
        _ => {}
    }
    let args = match args() {
        Ok(args) => args,
        Err(e) => {
            eprintln!("{e}");
            std::process::exit(2);
        }
    };
    // The clients' sockets here, and the server's in its own process.
    let want = args.clients as u64 + 1024;
    let files = raise_open_files(want);
    assert!(
        files >= want,
        "the open-files limit is {files}: too low for {} clients and their server",
        args.clients
    );
    let redis = (args.nodes == 2).then(|| {
        let base = std::env::var("EVENTS_TEST_REDIS_URL")
            .unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
        format!("{base}?prefix=events-bc-load-{}", std::process::id())
    });
    let mut nodes: Vec<Node> = (0..args.nodes)
        .map(|_| start_node(redis.as_deref(), args.bare))
        .collect();
    let base_rss: Vec<u64> = nodes.iter().map(|n| rss_kib(n.child.id())).collect();

    let epoch = Instant::now();
    let latencies: Arc<Mutex<Vec<u128>>> = Arc::new(Mutex::new(Vec::new()));
    let (ready_tx, mut ready_rx) = tokio::sync::mpsc::channel::<()>(args.clients);
    // Each client says when it has all its events, then waits to close
    // until every client has them: closing sockets while others still
    // receive would put the teardown's work into the last event's latency.
    let (finished_tx, mut finished_rx) = tokio::sync::mpsc::channel::<()>(args.clients);
    let (close_tx, close_rx) = tokio::sync::watch::channel(false);
    let config = WebSocketConfig::default()
        .read_buffer_size(4 * 1024)
        .write_buffer_size(0);
    let started = Instant::now();
    let gate = Arc::new(tokio::sync::Semaphore::new(200));
    let mut tasks = Vec::with_capacity(args.clients);
    for i in 0..args.clients {
        let port = nodes[i % nodes.len()].port;
        let latencies = latencies.clone();
        let ready = ready_tx.clone();
        let gate = gate.clone();
        let finished = finished_tx.clone();
        let mut close = close_rx.clone();
        let expected = args.messages;
        tasks.push(tokio::spawn(async move {
            // At most 200 handshakes in flight; let go once subscribed.
            let mut permit = Some(gate.acquire_owned().await.expect("the gate"));
            let url = format!("ws://127.0.0.1:{port}/app/{KEY}?protocol=7&client=load&version=1");
            let (mut ws, _) = tokio_tungstenite::connect_async_with_config(url, Some(config), true)
                .await
                .expect("connects");
            ws.send(Message::Text(
                format!(r#"{{"event":"pusher:subscribe","data":{{"channel":"{CHANNEL}"}}}}"#)
                    .into(),
            ))
            .await
            .expect("subscribes");
            let mut mine = Vec::with_capacity(expected);
            while let Some(Ok(message)) = ws.next().await {
                let Message::Text(text) = message else {
                    continue;
                };
                let text = text.as_str();
                if text.contains("subscription_succeeded") {
                    permit = None;
                    let _ = ready.send(()).await;
                    continue;
                }
                // Only the ticks: other frames have numbers too
                // (`connection_established` has `activity_timeout\":120`,
                // which an earlier version of this tool read as a tick).
                // The tick's data is "{\"t\":123}": read the number after it.
                const TICK: &str = r#""event":"tick""#;
                const T: &str = r#""data":"{\"t\":"#;
                if text.contains(TICK)
                    && let Some(at) = text.find(T)
                {
                    let digits: String = text[at + T.len()..]
                        .chars()
                        .take_while(char::is_ascii_digit)
                        .collect();
                    if let Ok(sent) = digits.parse::<u128>() {
                        mine.push(epoch.elapsed().as_nanos().saturating_sub(sent));
                        if mine.len() == expected {
                            break;
                        }
                    }
                }
            }
            drop(permit);
            if std::env::var_os("LOAD_DEBUG").is_some() {
                let slow: Vec<usize> = mine
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| **l > 500_000_000)
                    .map(|(at, _)| at)
                    .collect();
                if !slow.is_empty() {
                    eprintln!("debug: client {i} slow at messages {slow:?}");
                }
            }
            latencies.lock().expect("the samples").extend(mine);
            let _ = finished.send(()).await;
            let _ = close.wait_for(|close| *close).await;
            let _ = ws.close(None).await;
        }));
    }
    drop(ready_tx);
    drop(finished_tx);
    for _ in 0..args.clients {
        tokio::time::timeout(Duration::from_secs(120), ready_rx.recv())
            .await
            .expect("every client subscribes within 120 s");
    }
    let connect_time = started.elapsed();
    tokio::time::sleep(Duration::from_millis(500)).await;
    let rss: Vec<u64> = nodes.iter().map(|n| rss_kib(n.child.id())).collect();

    let cpu_before: Vec<f64> = nodes.iter().map(|n| cpu_seconds(n.child.id())).collect();
    let mut round_trips = Vec::with_capacity(args.messages);
    let mut control = match nodes[0].control {
        Some(port) => Some(
            tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .expect("the bare server's control socket"),
        ),
        None => None,
    };
    for _ in 0..args.messages {
        let at = Instant::now();
        let sent = epoch.elapsed().as_nanos();
        match &mut control {
            Some(control) => control
                .write_all(format!("{sent}\n").as_bytes())
                .await
                .expect("the bare server takes the event"),
            None => publish(nodes[0].port, sent).await,
        }
        round_trips.push(at.elapsed().as_nanos());
        tokio::time::sleep(args.every).await;
    }
    round_trips.sort_unstable();
    let deadline = Duration::from_secs(60);
    let _ = tokio::time::timeout(deadline, async {
        for _ in 0..args.clients {
            finished_rx.recv().await;
        }
    })
    .await;
    let _ = close_tx.send(true);
    for task in tasks {
        let _ = tokio::time::timeout(deadline, task).await;
    }
    let cpu: Vec<f64> = nodes
        .iter()
        .zip(&cpu_before)
        .map(|(n, before)| cpu_seconds(n.child.id()) - before)
        .collect();
    let mut samples = std::mem::take(&mut *latencies.lock().expect("the samples"));
    if std::env::var_os("LOAD_DEBUG").is_some() {
        let slow = samples.iter().filter(|l| **l > 500_000_000).count();
        eprintln!("debug: {slow} samples over 500 ms");
    }
    samples.sort_unstable();
    let expected = args.clients * args.messages;
    println!(
        "{}clients {} on {} node(s), {} messages every {:?}: {} of {} deliveries",
        if args.bare {
            "BARE SERVER (the floor): "
        } else {
            ""
        },
        args.clients,
        args.nodes,
        args.messages,
        args.every,
        samples.len(),
        expected
    );
    println!(
        "connected and subscribed in {:.2} s",
        connect_time.as_secs_f64()
    );
    for (i, (rss, base)) in rss.iter().zip(&base_rss).enumerate() {
        println!(
            "node {i}: RSS {:.1} MB with its sockets ({:.1} MB idle; {:.1} KB a connection)",
            *rss as f64 / 1024.0,
            *base as f64 / 1024.0,
            rss.saturating_sub(*base) as f64 * (args.nodes as f64) / args.clients as f64
        );
    }
    for (i, cpu) in cpu.iter().enumerate() {
        println!(
            "node {i}: {:.2} s of CPU while publishing, {:.2} µs a delivery",
            cpu,
            cpu * 1e6 / (samples.len().max(1) as f64 / args.nodes as f64)
        );
    }
    println!(
        "{}: p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        if args.bare {
            "the control socket's write"
        } else {
            "the HTTP API's answer"
        },
        percentile(&round_trips, 0.50),
        percentile(&round_trips, 0.99),
        percentile(&round_trips, 1.0)
    );
    println!(
        "publish -> receive: p50 {:.2} ms, p95 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        percentile(&samples, 0.50),
        percentile(&samples, 0.95),
        percentile(&samples, 0.99),
        percentile(&samples, 1.0)
    );
    for node in &mut nodes {
        drop(node.child.stdin.take());
        let _ = node.child.wait();
    }
    if let Some(url) = &redis {
        clean_redis(url);
    }
    if samples.len() != expected {
        eprintln!("some deliveries were missing");
        std::process::exit(1);
    }
}
