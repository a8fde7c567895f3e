//! Two Linux network namespaces joined by a veth pair, so that the real `blindmatch`
//! binary can run on either side of a kernel link whose faults the kernel injects:
//! `tc netem` (loss and delay); where the kernel has no netem, an nftables rule for
//! random loss (no delay); for a dark link, netem `loss 100%` or else a `pfifo` queue
//! of length 0, which drops every packet.
//!
//! Setting up needs root and `ip` (iproute2). [`NetnsPair::create`] returns why it
//! cannot, so that a test can print `skipped: <reason>` and pass. Names are unique per
//! process; dropping the pair deletes both namespaces (and with them the veth pair),
//! and namespaces left behind by a test process that was killed are removed on the
//! next run.

use std::net::{IpAddr, Ipv4Addr};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};

/// Prefix of every namespace these tests create.
const PREFIX: &str = "blindmatch-test-";

/// Which end of the link.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Side {
    /// Namespace `a`, address `10.77.0.1`.
    A,
    /// Namespace `b`, address `10.77.0.2`.
    B,
}

/// Two namespaces and the veth pair between them.
pub struct NetnsPair {
    names: [String; 2],
    veths: [String; 2],
}

/// Faults on the link, both directions.
#[derive(Clone, Copy, Debug)]
pub struct LinkFaults {
    /// Percentage of packets dropped.
    pub loss_percent: u32,
    /// Delay added to every packet, in milliseconds (netem only).
    pub delay_ms: u32,
}

impl NetnsPair {
    /// Creates the namespaces and the link, or says why this machine cannot.
    pub fn create() -> Result<NetnsPair, String> {
        if !is_root() {
            return Err("network namespaces need root".into());
        }
        run(&["ip", "-V"]).map_err(|e| format!("iproute2 is not usable: {e}"))?;
        remove_stale();
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let pid = std::process::id();
        let pair = NetnsPair {
            names: [
                format!("{PREFIX}{pid}-{n}-a"),
                format!("{PREFIX}{pid}-{n}-b"),
            ],
            // Interface names are at most 15 bytes.
            veths: [format!("bmv{pid}x{n}a"), format!("bmv{pid}x{n}b")],
        };
        for name in &pair.names {
            run(&["ip", "netns", "add", name])
                .map_err(|e| format!("`ip netns add` failed: {e}"))?;
        }
        // From here on, `Drop` removes whatever was created.
        let [a, b] = &pair.names;
        let [va, vb] = &pair.veths;
        let steps: Vec<Vec<&str>> = vec![
            vec!["ip", "link", "add", va, "type", "veth", "peer", "name", vb],
            vec!["ip", "link", "set", va, "netns", a],
            vec!["ip", "link", "set", vb, "netns", b],
            vec!["ip", "-n", a, "addr", "add", "10.77.0.1/24", "dev", va],
            vec!["ip", "-n", b, "addr", "add", "10.77.0.2/24", "dev", vb],
            vec!["ip", "-n", a, "link", "set", va, "up"],
            vec!["ip", "-n", b, "link", "set", vb, "up"],
            vec!["ip", "-n", a, "link", "set", "lo", "up"],
            vec!["ip", "-n", b, "link", "set", "lo", "up"],
        ];
        for step in steps {
            run(&step).map_err(|e| format!("setting up the veth link failed: {e}"))?;
        }
        Ok(pair)
    }

    /// The address of `side` on the link.
    pub fn addr(&self, side: Side) -> IpAddr {
        match side {
            Side::A => IpAddr::V4(Ipv4Addr::new(10, 77, 0, 1)),
            Side::B => IpAddr::V4(Ipv4Addr::new(10, 77, 0, 2)),
        }
    }

    /// A command that runs `program` inside `side`'s namespace.
    pub fn command(&self, side: Side, program: &str) -> Command {
        let mut command = Command::new("ip");
        command
            .args(["netns", "exec", self.name(side), program])
            .stdin(Stdio::null());
        command
    }

    /// The `ip netns exec <name>` prefix for `side`.
    pub fn exec_prefix(&self, side: Side) -> Vec<String> {
        vec![
            "ip".into(),
            "netns".into(),
            "exec".into(),
            self.name(side).to_owned(),
        ]
    }

    /// Makes the link lossy (and slow, with netem) in both directions. Returns how,
    /// or why it cannot.
    pub fn impair(&self, faults: LinkFaults) -> Result<String, String> {
        self.clear();
        let loss = format!("{}%", faults.loss_percent);
        let delay = format!("{}ms", faults.delay_ms);
        let netem = self.each(|ns, veth| {
            run(&[
                "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", veth, "root", "netem",
                "loss", &loss, "delay", &delay,
            ])
            .map(drop)
        });
        match netem {
            Ok(()) => Ok(format!("tc netem loss {loss} delay {delay}")),
            Err(err) => {
                self.clear();
                let script = |veth: &str| {
                    format!(
                        "table inet blindmatch_test {{\n chain out {{\n  type filter hook output priority 0; policy accept;\n  oifname \"{veth}\" meta l4proto udp numgen random mod 100 < {} counter drop\n }}\n}}\n",
                        faults.loss_percent
                    )
                };
                let nft = self.each(|ns, veth| {
                    run_with_input(
                        &["ip", "netns", "exec", ns, "nft", "-f", "-"],
                        &script(veth),
                    )
                });
                match nft {
                    Ok(()) => Ok(format!(
                        "nftables: {loss} random loss, no added delay (no netem: {err})"
                    )),
                    Err(nft_err) => {
                        self.clear();
                        Err(format!(
                            "neither tc netem ({err}) nor nftables ({nft_err}) can drop packets"
                        ))
                    }
                }
            }
        }
    }

    /// Drops every packet in both directions. Returns how, or why it cannot.
    pub fn go_dark(&self) -> Result<String, String> {
        self.clear();
        let netem = self.each(|ns, veth| {
            run(&[
                "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", veth, "root", "netem",
                "loss", "100%",
            ])
            .map(drop)
        });
        if netem.is_ok() {
            return Ok("tc netem loss 100%".into());
        }
        self.clear();
        self.each(|ns, veth| {
            run(&[
                "ip", "netns", "exec", ns, "tc", "qdisc", "add", "dev", veth, "root", "pfifo",
                "limit", "0",
            ])
            .map(drop)
        })
        .map(|()| "tc pfifo limit 0 (drops every packet; no netem)".into())
    }

    /// Packets the faults dropped so far, both directions (netem's or nftables'
    /// counters), when they can be read.
    pub fn dropped(&self) -> Option<u64> {
        let mut total = None;
        for (ns, veth) in self.names.iter().zip(&self.veths) {
            let qdisc = run(&[
                "ip", "netns", "exec", ns, "tc", "-s", "qdisc", "show", "dev", veth,
            ])
            .ok()
            .and_then(|text| number_after(&text, "dropped "));
            let nft = run(&[
                "ip",
                "netns",
                "exec",
                ns,
                "nft",
                "list",
                "table",
                "inet",
                "blindmatch_test",
            ])
            .ok()
            .and_then(|text| number_after(&text, "counter packets "));
            if let Some(n) = qdisc.into_iter().chain(nft).reduce(|a, b| a + b) {
                *total.get_or_insert(0) += n;
            }
        }
        total
    }

    /// Removes every fault.
    pub fn clear(&self) {
        let _ = self.each(|ns, veth| {
            let _ = run(&[
                "ip", "netns", "exec", ns, "tc", "qdisc", "del", "dev", veth, "root",
            ]);
            let _ = run(&[
                "ip",
                "netns",
                "exec",
                ns,
                "nft",
                "delete",
                "table",
                "inet",
                "blindmatch_test",
            ]);
            Ok(())
        });
    }

    fn name(&self, side: Side) -> &str {
        match side {
            Side::A => &self.names[0],
            Side::B => &self.names[1],
        }
    }

    fn each(&self, mut f: impl FnMut(&str, &str) -> Result<(), String>) -> Result<(), String> {
        for (ns, veth) in self.names.iter().zip(&self.veths) {
            f(ns, veth)?;
        }
        Ok(())
    }
}

impl Drop for NetnsPair {
    fn drop(&mut self) {
        for name in &self.names {
            let _ = run(&["ip", "netns", "del", name]);
        }
        // A veth still in the root namespace (setup failed halfway) goes too.
        let _ = run(&["ip", "link", "del", &self.veths[0]]);
    }
}

/// The number right after the first `label` in `text`.
fn number_after(text: &str, label: &str) -> Option<u64> {
    let rest = &text[text.find(label)? + label.len()..];
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whether we run as root (effective uid 0).
fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|euid| euid == "0"))
        })
        .unwrap_or(false)
}

/// Deletes namespaces of earlier test processes that no longer exist.
fn remove_stale() {
    let Ok(listed) = run(&["ip", "netns", "list"]) else {
        return;
    };
    for line in listed.lines() {
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some(pid) = name
            .strip_prefix(PREFIX)
            .and_then(|rest| rest.split('-').next())
        else {
            continue;
        };
        if !std::path::Path::new(&format!("/proc/{pid}")).exists() {
            let _ = run(&["ip", "netns", "del", name]);
        }
    }
}

/// Runs `args`; returns stdout, or the command and its stderr.
fn run(args: &[&str]) -> Result<String, String> {
    let output = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    } else {
        Err(format!(
            "`{}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}

/// [`run`] with `input` on stdin.
fn run_with_input(args: &[&str], input: &str) -> Result<(), String> {
    use std::io::Write;
    let mut child = Command::new(args[0])
        .args(&args[1..])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    }
    let output = child
        .wait_with_output()
        .map_err(|e| format!("{}: {e}", args.join(" ")))?;
    if output.status.success() {
        Ok(())
    } else {
        Err(format!(
            "`{}`: {}",
            args.join(" "),
            String::from_utf8_lossy(&output.stderr).trim()
        ))
    }
}
