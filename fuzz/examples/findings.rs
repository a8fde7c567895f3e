//! Reproducers of the findings in README.md, printed from the protocol's public API.
//!
//! ```sh
//! cd fuzz && cargo run --release --example findings
//! ```

use blindmatch_fuzz::session::record;
use blindmatch_protocol::session::{Responder, ResponderConfig, Role, Session, learns_count};
use blindmatch_protocol::wire::{Message, OutputMode};

fn main() {
    finish_carries_count();
    closed_session_keeps_aborting();
}

/// F1: which `Finish` frames carry the intersection size, and whether their receiver's
/// mode lets it learn the size.
fn finish_carries_count() {
    println!("F1: mode         Finish sent to  carries count  receiver may learn it");
    for mode in OutputMode::ALL {
        let run = record(mode, false);
        for (receiver, frames) in [
            (Role::Responder, &run.to_responder),
            (Role::Initiator, &run.to_initiator),
        ] {
            let count = frames.iter().find_map(|f| match Message::decode(f) {
                Ok(Message::Finish(finish)) => Some(finish.intersection),
                _ => None,
            });
            let count = count.expect("a completed session has a Finish");
            let allowed = learns_count(mode, receiver);
            let flag = if count.is_some() && !allowed {
                "  <-- leak"
            } else {
                ""
            };
            println!(
                "    {:<12} {:<15} {:<14} {allowed}{flag}",
                mode.name(),
                receiver.name(),
                format!("{count:?}"),
            );
        }
    }
}

/// F2: every frame fed to a closed session queues one more `Abort`.
fn closed_session_keeps_aborting() {
    println!("F2: a responder fed three empty frames");
    let mut responder = Responder::new(ResponderConfig::default());
    for i in 1..=3 {
        let result = responder.handle_frame(&[]);
        let sent: Vec<_> = std::iter::from_fn(|| responder.poll_transmit())
            .map(|f| Message::decode(&f))
            .collect();
        println!(
            "    frame {i}: closed={} result={result:?} sent={sent:?}",
            responder.is_closed()
        );
    }
}
