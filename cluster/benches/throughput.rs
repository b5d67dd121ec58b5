//! One-way throughput of 64-byte messages and round-trip latency between two servers
//! on loopback, through the public API, next to a baseline written directly on
//! tokio-util's `LengthDelimitedCodec` with the same encoding and batching.
//!
//! Round trips are measured against two baselines. The servers connect as the crate
//! does, one connection each way (each server writes on the connection it dialled and
//! reads the one its peer dialled), so the first baseline does the same. The second
//! sends requests and replies over one connection, which is faster on Linux: each
//! reply carries the acknowledgement of its request, where one-way connections need
//! separate acknowledgement segments and take the kernel's slower receive path.
//!
//! Run with `cargo bench -p cluster --bench throughput`. Each figure is the median of
//! several runs.
//!
//! With `CLUSTER_BENCH_TLS=1` the same measurements compare the servers over mutual
//! TLS (certificates made at start with rcgen, ECDSA P-256, TLS 1.3 with the ring
//! provider) against the servers over plain TCP, runs interleaved, instead of against
//! the baseline.

use std::path::Path;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cluster::{decode_payload, encode_frame, Config, Server, TlsFiles};
use futures::{SinkExt, StreamExt};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::codec::{FramedRead, FramedWrite, LengthDelimitedCodec};

/// Messages per throughput run (override with `CLUSTER_BENCH_MESSAGES`).
const DEFAULT_MESSAGES: u64 = 2_000_000;

fn messages() -> u64 {
    std::env::var("CLUSTER_BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(DEFAULT_MESSAGES)
}

/// Round trips per latency run.
const ROUND_TRIPS: usize = 20_000;

/// Runs of each measurement; the median is quoted.
const RUNS: usize = 5;

/// Frames fed to the baseline's writer between flushes, like the server's batches.
const BASELINE_BATCH: u64 = 512;

const MAX_FRAME: usize = 1024 * 1024;

/// A byte buffer: serde encodes it as bytes, so it decodes in one allocation. A plain
/// `Vec<u8>` goes through serde's sequence path instead, one element at a time.
type Payload = Bytes;

fn payload() -> Payload {
    (0..64u8).collect()
}

async fn listener() -> TcpListener {
    TcpListener::bind("127.0.0.1:0").await.expect("bind")
}

/// A development authority and certificates for servers 1 and 2 in `dir`.
fn make_certificates(dir: &Path) -> TlsFiles {
    use rcgen::{BasicConstraints, CertificateParams, ExtendedKeyUsagePurpose, IsCa, KeyPair};

    let mut params = CertificateParams::new(Vec::<String>::new()).expect("params");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca_key = KeyPair::generate().expect("key");
    let ca = params.self_signed(&ca_key).expect("authority");
    std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write");
    for id in [1, 2] {
        let name = cluster::server_name(cluster::DEFAULT_CLUSTER_NAME, id);
        let mut params = CertificateParams::new(vec![name]).expect("params");
        params.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &ca, &ca_key).expect("certificate");
        std::fs::write(dir.join(format!("{id}.pem")), cert.pem()).expect("write");
        std::fs::write(dir.join(format!("{id}-key.pem")), key.serialize_pem()).expect("write");
    }
    TlsFiles::new(
        dir.join("ca.pem"),
        dir.join("{id}.pem"),
        dir.join("{id}-key.pem"),
    )
}

async fn pair(tls: Option<TlsFiles>) -> (Server<Payload>, Server<Payload>) {
    let (a, b) = (listener().await, listener().await);
    let mut config = Config::new([
        (1, a.local_addr().expect("addr")),
        (2, b.local_addr().expect("addr")),
    ]);
    if let Some(files) = tls {
        config = config.with_tls(files);
    }
    let mut one = Server::start_with_listener(&config, 1, a)
        .await
        .expect("start");
    let mut two = Server::start_with_listener(&config, 2, b)
        .await
        .expect("start");
    for server in [&mut one, &mut two] {
        while !matches!(
            server.next_event().await,
            Some(cluster::PeerEvent::Connected(_))
        ) {}
    }
    (one, two)
}

/// Messages per second from server 1 to server 2.
async fn ours_throughput(tls: Option<TlsFiles>) -> f64 {
    let (one, mut two) = pair(tls).await;
    let message = payload();
    let total = messages();
    let started = Instant::now();
    let sender = one.sender();
    let sending = tokio::spawn(async move {
        for id in 0..total {
            sender.send_waiting(2, id, &message).await.expect("send");
        }
    });
    let mut received = 0;
    while received < total {
        two.recv().await.expect("receive");
        received += 1;
    }
    let elapsed = started.elapsed();
    sending.await.expect("sender");
    one.shutdown().await;
    two.shutdown().await;
    total as f64 / elapsed.as_secs_f64()
}

/// Round-trip times: server 1 sends, server 2 echoes.
async fn ours_latency(tls: Option<TlsFiles>) -> Vec<Duration> {
    let (mut one, mut two) = pair(tls).await;
    let echo = tokio::spawn(async move {
        for _ in 0..ROUND_TRIPS {
            let envelope = two.recv().await.expect("request");
            two.send(1, envelope.message_id, &envelope.message)
                .expect("echo");
        }
        two
    });

    let message = payload();
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for id in 0..ROUND_TRIPS as u64 {
        let started = Instant::now();
        one.send(2, id, &message).expect("send");
        let back = one.recv().await.expect("echo");
        times.push(started.elapsed());
        assert_eq!(back.message_id, id);
    }
    one.shutdown().await;
    echo.await.expect("echo task").shutdown().await;
    times
}

async fn connected_streams() -> (TcpStream, TcpStream) {
    let listener = listener().await;
    let addr = listener.local_addr().expect("addr");
    let (client, server) = tokio::join!(TcpStream::connect(addr), listener.accept());
    let client = client.expect("connect");
    let (server, _) = server.expect("accept");
    client.set_nodelay(true).expect("nodelay");
    server.set_nodelay(true).expect("nodelay");
    (client, server)
}

/// The payload of one frame: the same bincode encoding the servers use.
fn baseline_frame(id: u64, message: &Payload) -> Bytes {
    encode_frame(id, message, MAX_FRAME)
        .expect("encode")
        .slice(4..)
}

fn codec() -> LengthDelimitedCodec {
    LengthDelimitedCodec::builder()
        .max_frame_length(MAX_FRAME)
        .new_codec()
}

/// Messages per second over a bare framed TCP stream.
async fn baseline_throughput() -> f64 {
    let (client, server) = connected_streams().await;
    let message = payload();
    let total = messages();
    let started = Instant::now();
    let sending = tokio::spawn(async move {
        let mut sink = FramedWrite::new(client, codec());
        for id in 0..total {
            SinkExt::<Bytes>::feed(&mut sink, baseline_frame(id, &message))
                .await
                .expect("feed");
            if id % BASELINE_BATCH == BASELINE_BATCH - 1 {
                SinkExt::<Bytes>::flush(&mut sink).await.expect("flush");
            }
        }
        SinkExt::<Bytes>::flush(&mut sink).await.expect("flush");
        sink
    });

    let mut frames = FramedRead::new(server, codec());
    let mut received = 0;
    while received < total {
        let frame = frames.next().await.expect("open").expect("frame");
        let (_id, message): (u64, Payload) = decode_payload(&frame, MAX_FRAME).expect("decode");
        std::hint::black_box(message);
        received += 1;
    }
    let elapsed = started.elapsed();
    drop(sending.await.expect("sender"));
    total as f64 / elapsed.as_secs_f64()
}

/// Round-trip times over one bare framed TCP stream carrying both requests and
/// replies, with an echoing task.
async fn baseline_latency_one_stream() -> Vec<Duration> {
    let (client, server) = connected_streams().await;
    let (client_read, client_write) = client.into_split();
    let (server_read, server_write) = server.into_split();
    framed_round_trips(client_write, server_read, server_write, client_read).await
}

/// Round-trip times over two bare framed TCP streams, one each way, as the servers
/// connect: each side writes on the connection it dialled and reads the other's.
async fn baseline_latency_two_streams() -> Vec<Duration> {
    let (request_out, request_in) = connected_streams().await;
    let (reply_out, reply_in) = connected_streams().await;
    framed_round_trips(request_out, request_in, reply_out, reply_in).await
}

/// Times round trips of framed messages: each request is written to `requests`, read
/// from `requests_in` by an echoing task that writes it back to `replies`, and read
/// from `replies_in`.
async fn framed_round_trips<W1, R1, W2, R2>(
    requests: W1,
    requests_in: R1,
    replies: W2,
    replies_in: R2,
) -> Vec<Duration>
where
    W1: AsyncWrite + Unpin,
    R1: AsyncRead + Unpin + Send + 'static,
    W2: AsyncWrite + Unpin + Send + 'static,
    R2: AsyncRead + Unpin,
{
    let echo = tokio::spawn(async move {
        let mut frames = FramedRead::new(requests_in, codec());
        let mut sink = FramedWrite::new(replies, codec());
        for _ in 0..ROUND_TRIPS {
            let frame = frames.next().await.expect("open").expect("frame");
            let (id, message): (u64, Payload) = decode_payload(&frame, MAX_FRAME).expect("decode");
            if SinkExt::<Bytes>::send(&mut sink, baseline_frame(id, &message))
                .await
                .is_err()
            {
                break;
            }
        }
    });

    let mut frames = FramedRead::new(replies_in, codec());
    let mut sink = FramedWrite::new(requests, codec());
    let message = payload();
    let mut times = Vec::with_capacity(ROUND_TRIPS);
    for id in 0..ROUND_TRIPS as u64 {
        let started = Instant::now();
        SinkExt::<Bytes>::send(&mut sink, baseline_frame(id, &message))
            .await
            .expect("send");
        let frame = frames.next().await.expect("open").expect("frame");
        let (back, _message): (u64, Payload) = decode_payload(&frame, MAX_FRAME).expect("decode");
        times.push(started.elapsed());
        assert_eq!(back, id);
    }
    drop(sink);
    echo.await.expect("echo task");
    times
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn percentile(times: &mut [Duration], fraction: f64) -> Duration {
    times.sort_unstable();
    let index = ((times.len() as f64 - 1.0) * fraction).round() as usize;
    times[index]
}

fn micros(d: f64) -> String {
    format!("{d:.1} µs")
}

fn main() {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");

    let tls_mode = std::env::var("CLUSTER_BENCH_TLS").is_ok_and(|v| v == "1");
    let certificates = tempfile::tempdir().expect("temporary directory");
    let tls = tls_mode.then(|| make_certificates(certificates.path()));
    if tls_mode {
        return runtime.block_on(tls_against_tcp(tls));
    }

    // Every measurement runs in a spawned task, so both sides of each run are on the
    // runtime's worker threads, not on the thread blocked in block_on.
    runtime.block_on(async {
        let mut ours = Vec::new();
        let mut base = Vec::new();
        for run in 0..RUNS {
            eprintln!("run {run}: cluster throughput");
            ours.push(
                tokio::spawn(ours_throughput(None))
                    .await
                    .expect("ours_throughput"),
            );
            eprintln!("run {run}: baseline throughput");
            base.push(
                tokio::spawn(baseline_throughput())
                    .await
                    .expect("baseline_throughput"),
            );
            println!(
                "run {run}: ours {:.0} msg/s, baseline {:.0} msg/s",
                ours[run], base[run]
            );
        }
        let (ours_rate, base_rate) = (median(ours), median(base));

        let mut ours = Percentiles::default();
        let mut two_streams = Percentiles::default();
        let mut one_stream = Percentiles::default();
        for _ in 0..RUNS {
            let times = tokio::spawn(ours_latency(None)).await;
            ours.add(times.expect("ours_latency"));
            let times = tokio::spawn(baseline_latency_two_streams()).await;
            two_streams.add(times.expect("baseline_latency_two_streams"));
            let times = tokio::spawn(baseline_latency_one_stream()).await;
            one_stream.add(times.expect("baseline_latency_one_stream"));
        }

        println!();
        println!("64-byte messages, two servers on 127.0.0.1, medians of {RUNS} runs");
        println!("| measure | cluster | baseline (Framed + LengthDelimitedCodec) | ratio |");
        println!("| --- | --- | --- | --- |");
        println!(
            "| one-way throughput ({} msgs) | {:.2} M msg/s | {:.2} M msg/s | {:.2} |",
            messages(),
            ours_rate / 1e6,
            base_rate / 1e6,
            ours_rate / base_rate
        );
        for (name, baseline) in [
            ("one connection each way", &two_streams),
            ("one connection both ways", &one_stream),
        ] {
            for (label, of) in [
                ("p50", Percentiles::p50 as fn(&_) -> _),
                ("p99", Percentiles::p99),
            ] {
                let (o, b) = (of(&ours), of(baseline));
                println!(
                    "| round trip {label} ({ROUND_TRIPS} trips), baseline {name} \
                     | {} | {} | {:.2} |",
                    micros(o),
                    micros(b),
                    o / b
                );
            }
        }
    });
}

/// The p50 and p99 of each run's round-trip times, in microseconds.
#[derive(Default)]
struct Percentiles {
    p50: Vec<f64>,
    p99: Vec<f64>,
}

impl Percentiles {
    fn add(&mut self, mut times: Vec<Duration>) {
        self.p50
            .push(percentile(&mut times, 0.50).as_secs_f64() * 1e6);
        self.p99
            .push(percentile(&mut times, 0.99).as_secs_f64() * 1e6);
    }

    /// The median over runs of the p50.
    fn p50(&self) -> f64 {
        median(self.p50.clone())
    }

    /// The median over runs of the p99.
    fn p99(&self) -> f64 {
        median(self.p99.clone())
    }
}

/// The servers over TLS against the same servers over plain TCP, runs interleaved.
async fn tls_against_tcp(tls: Option<TlsFiles>) {
    let mut over_tls = Vec::new();
    let mut over_tcp = Vec::new();
    for run in 0..RUNS {
        eprintln!("run {run}: throughput over TLS, then TCP");
        let rate = tokio::spawn(ours_throughput(tls.clone())).await;
        over_tls.push(rate.expect("throughput over TLS"));
        let rate = tokio::spawn(ours_throughput(None)).await;
        over_tcp.push(rate.expect("throughput over TCP"));
        println!(
            "run {run}: TLS {:.0} msg/s, TCP {:.0} msg/s",
            over_tls[run], over_tcp[run]
        );
    }
    let (tls_rate, tcp_rate) = (median(over_tls), median(over_tcp));

    let (mut over_tls, mut over_tcp) = (Percentiles::default(), Percentiles::default());
    for run in 0..RUNS {
        let times = tokio::spawn(ours_latency(tls.clone())).await;
        over_tls.add(times.expect("latency over TLS"));
        let times = tokio::spawn(ours_latency(None)).await;
        over_tcp.add(times.expect("latency over TCP"));
        println!(
            "run {run}: round trip p50/p99 TLS {:.1}/{:.1} µs, TCP {:.1}/{:.1} µs",
            over_tls.p50[run], over_tls.p99[run], over_tcp.p50[run], over_tcp.p99[run]
        );
    }
    let (s50, s99) = (over_tls.p50(), over_tls.p99());
    let (p50, p99) = (over_tcp.p50(), over_tcp.p99());

    println!();
    println!("64-byte messages, two servers on 127.0.0.1, medians of {RUNS} runs");
    println!("| measure | cluster over TLS | cluster over TCP | ratio |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| one-way throughput ({} msgs) | {:.2} M msg/s | {:.2} M msg/s | {:.2} |",
        messages(),
        tls_rate / 1e6,
        tcp_rate / 1e6,
        tls_rate / tcp_rate
    );
    println!(
        "| round trip p50 ({ROUND_TRIPS} trips) | {} | {} | {:.2} |",
        micros(s50),
        micros(p50),
        s50 / p50
    );
    println!(
        "| round trip p99 | {} | {} | {:.2} |",
        micros(s99),
        micros(p99),
        s99 / p99
    );
}
