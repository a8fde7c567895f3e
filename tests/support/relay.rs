//! An in-process UDP relay between one QUIC client and one server, with faults:
//! random loss, added delay (with jitter), duplication, reordering, and a "go dark"
//! switch that silently drops everything in both directions.
//!
//! The client connects to [`Relay::addr`]; the relay forwards from its own socket to
//! the upstream server and sends replies back to the last client address it heard
//! from. Randomness is seeded, so a failing run can be repeated.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use tokio::net::UdpSocket;
use tokio::task::JoinHandle;

/// What the relay does to each datagram (each direction independently).
#[derive(Clone, Copy, Debug, Default)]
pub struct Faults {
    /// Probability that a datagram is dropped.
    pub drop: f64,
    /// Delay added to every datagram.
    pub delay: Duration,
    /// Up to this much extra random delay per datagram.
    pub jitter: Duration,
    /// Probability that a datagram is sent twice.
    pub duplicate: f64,
    /// Probability that a datagram is held back by `reorder_by`, so later ones
    /// overtake it.
    pub reorder: f64,
    /// How long a reordered datagram is held back.
    pub reorder_by: Duration,
}

impl Faults {
    /// A clean link.
    pub fn none() -> Self {
        Self::default()
    }

    /// `drop` loss and `delay` added delay, nothing else.
    pub fn lossy(drop: f64, delay: Duration) -> Self {
        Self {
            drop,
            delay,
            ..Self::default()
        }
    }
}

/// Datagram counters, both directions together.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayStats {
    /// Datagrams received from either side.
    pub seen: u64,
    /// Dropped at random.
    pub dropped: u64,
    /// Dropped because the link was dark.
    pub dark: u64,
    /// Extra copies sent.
    pub duplicated: u64,
    /// Held back to be reordered.
    pub reordered: u64,
}

#[derive(Default)]
struct Counters {
    seen: AtomicU64,
    dropped: AtomicU64,
    dark: AtomicU64,
    duplicated: AtomicU64,
    reordered: AtomicU64,
}

struct Shared {
    faults: Mutex<Faults>,
    dark: AtomicBool,
    /// Go dark once this many datagrams have been seen.
    dark_after: AtomicU64,
    dark_since: Mutex<Option<Instant>>,
    counters: Counters,
    client: Mutex<Option<SocketAddr>>,
}

/// A running relay; stops when dropped.
pub struct Relay {
    /// Where the client should connect.
    pub addr: SocketAddr,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Relay {
    /// Starts relaying to `upstream` on 127.0.0.1 with `faults`; `seed` fixes the
    /// random choices.
    pub async fn start(upstream: SocketAddr, faults: Faults, seed: u64) -> Relay {
        let front = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind front"));
        let back = Arc::new(UdpSocket::bind("127.0.0.1:0").await.expect("bind back"));
        back.connect(upstream).await.expect("connect upstream");
        let addr = front.local_addr().expect("front addr");
        let shared = Arc::new(Shared {
            faults: Mutex::new(faults),
            dark: AtomicBool::new(false),
            dark_after: AtomicU64::new(u64::MAX),
            dark_since: Mutex::new(None),
            counters: Counters::default(),
            client: Mutex::new(None),
        });
        let to_server = tokio::spawn(forward(
            Arc::clone(&front),
            Arc::clone(&back),
            Direction::ToServer,
            Arc::clone(&shared),
            StdRng::seed_from_u64(seed),
        ));
        let to_client = tokio::spawn(forward(
            Arc::clone(&back),
            Arc::clone(&front),
            Direction::ToClient,
            Arc::clone(&shared),
            StdRng::seed_from_u64(seed.wrapping_add(1)),
        ));
        Relay {
            addr,
            shared,
            tasks: vec![to_server, to_client],
        }
    }

    /// Drops everything in both directions (`true`) or forwards again (`false`).
    pub fn go_dark(&self, dark: bool) {
        self.shared.set_dark(dark);
    }

    /// Goes dark by itself once `datagrams` datagrams have been seen (both directions
    /// together), e.g. in the middle of a session.
    pub fn go_dark_after(&self, datagrams: u64) {
        self.shared.dark_after.store(datagrams, Ordering::SeqCst);
    }

    /// When the link last went dark, if it is dark.
    pub fn dark_since(&self) -> Option<Instant> {
        *self.shared.dark_since.lock().expect("dark lock")
    }

    /// Replaces the faults applied from now on.
    pub fn set_faults(&self, faults: Faults) {
        *self.shared.faults.lock().expect("faults lock") = faults;
    }

    /// Counters so far.
    pub fn stats(&self) -> RelayStats {
        let c = &self.shared.counters;
        RelayStats {
            seen: c.seen.load(Ordering::Relaxed),
            dropped: c.dropped.load(Ordering::Relaxed),
            dark: c.dark.load(Ordering::Relaxed),
            duplicated: c.duplicated.load(Ordering::Relaxed),
            reordered: c.reordered.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
    }
}

impl Shared {
    fn set_dark(&self, dark: bool) {
        let mut since = self.dark_since.lock().expect("dark lock");
        if dark && since.is_none() {
            *since = Some(Instant::now());
        } else if !dark {
            *since = None;
        }
        self.dark.store(dark, Ordering::SeqCst);
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Direction {
    ToServer,
    ToClient,
}

async fn forward(
    from: Arc<UdpSocket>,
    to: Arc<UdpSocket>,
    direction: Direction,
    shared: Arc<Shared>,
    mut rng: StdRng,
) {
    let mut buf = vec![0u8; 65536];
    loop {
        let (len, source) = match from.recv_from(&mut buf).await {
            Ok(received) => received,
            // ICMP errors (e.g. the peer's port is gone) surface here; keep relaying.
            Err(_) => continue,
        };
        let counters = &shared.counters;
        let seen = counters.seen.fetch_add(1, Ordering::Relaxed) + 1;
        if seen >= shared.dark_after.load(Ordering::SeqCst) && !shared.dark.load(Ordering::SeqCst) {
            shared.set_dark(true);
        }
        let dest = match direction {
            Direction::ToServer => {
                *shared.client.lock().expect("client lock") = Some(source);
                None
            }
            Direction::ToClient => match *shared.client.lock().expect("client lock") {
                Some(client) => Some(client),
                None => continue,
            },
        };
        if shared.dark.load(Ordering::SeqCst) {
            counters.dark.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let faults = *shared.faults.lock().expect("faults lock");
        if faults.drop > 0.0 && rng.random_bool(faults.drop) {
            counters.dropped.fetch_add(1, Ordering::Relaxed);
            continue;
        }
        let mut delay = faults.delay;
        if !faults.jitter.is_zero() {
            delay += faults.jitter.mul_f64(rng.random::<f64>());
        }
        if faults.reorder > 0.0 && rng.random_bool(faults.reorder) {
            counters.reordered.fetch_add(1, Ordering::Relaxed);
            delay += faults.reorder_by;
        }
        let copies = if faults.duplicate > 0.0 && rng.random_bool(faults.duplicate) {
            counters.duplicated.fetch_add(1, Ordering::Relaxed);
            2
        } else {
            1
        };
        let datagram = buf[..len].to_vec();
        for copy in 0..copies {
            let extra = Duration::from_millis(copy);
            send_later(
                Arc::clone(&to),
                dest,
                datagram.clone(),
                delay + extra,
                &shared,
            );
        }
    }
}

fn send_later(
    socket: Arc<UdpSocket>,
    dest: Option<SocketAddr>,
    datagram: Vec<u8>,
    delay: Duration,
    shared: &Arc<Shared>,
) {
    let shared = Arc::clone(shared);
    let send = async move {
        // A link that went dark while the datagram was in flight loses it too.
        if shared.dark.load(Ordering::SeqCst) {
            shared.counters.dark.fetch_add(1, Ordering::Relaxed);
            return;
        }
        let _ = match dest {
            Some(dest) => socket.send_to(&datagram, dest).await,
            None => socket.send(&datagram).await,
        };
    };
    if delay.is_zero() {
        tokio::spawn(send);
    } else {
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            send.await;
        });
    }
}
