//! Two parties run a whole blindmatch session in memory with `blindmatch-protocol` alone:
//! no network, no files, no node. This is the core an integrator embeds when it brings
//! its own transport.
//!
//! The protocol crate is sans-IO: each party is a state machine. You feed it the frames
//! the other side sent (`handle_frame`), send what it asks to send (`poll_transmit`), and
//! answer its events (`poll_event`). Here "sending" is pushing onto the other party's
//! queue.
//!
//! Run it with `cargo run --example two_party_in_memory`.

use std::collections::VecDeque;

use blindmatch_protocol::ident::Normaliser;
use blindmatch_protocol::session::{
    Event, Initiator, InitiatorConfig, KeySigner, Outcome, Parties, PreparedSet,
    PreparedSetBuilder, ReceiptSigner, Responder, ResponderConfig, Session,
};
use blindmatch_protocol::wire::{DatasetRef, OutputMode};
use rand::Rng;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // 1. Normalise each party's contacts into identifiers. Record `i` of a party is the
    //    `i`-th contact of its list; one contact may have several identifiers.
    let normaliser = Normaliser::default(); // phone numbers default to region CN
    let crm = prepare(
        &normaliser,
        &[
            ("zhang.wei@acme-robotics.cn", "138 0013 8000"),
            ("li.na@yunfan-tech.cn", "+86 139 1234 5678"),
            ("wang.fang@example.cn", "13700000001"),
        ],
    )?;
    let provider = prepare(
        &normaliser,
        &[
            // Same person as CRM record 0, written differently: normalisation makes
            // the identifiers equal.
            ("Zhang.Wei@ACME-Robotics.cn", "+8613800138000"),
            ("chen.jie@other.cn", "13911112222"),
            // Matches CRM record 1 by phone only.
            ("lina@elsewhere.cn", "13912345678"),
        ],
    )?;

    // 2. Who is who. A real transport fills these from the pinned TLS certificates; the
    //    channel binding is the TLS exporter value both ends of the connection share,
    //    bound into the transcript so that a session cannot be relayed.
    let channel_binding = [42u8; 32];
    let acme_signer = KeySigner::from_seed(&[1; 32]); // receipts: each side's audit key
    let datahub_signer = KeySigner::from_seed(&[2; 32]);
    let (acme_audit_key, datahub_audit_key) =
        (acme_signer.public_key(), datahub_signer.public_key());
    let acme_fp = [0xa1; 32];
    let datahub_fp = [0xb2; 32];

    // 3. The initiator (acme) asks for mode `initiator`: acme learns which of its
    //    records matched, datahub learns nothing but the set sizes.
    let mut session_id = [0u8; 16];
    rand::rng().fill_bytes(&mut session_id);
    let mut config = InitiatorConfig::new(
        session_id,
        channel_binding,
        Parties {
            own_fingerprint: acme_fp,
            peer_fingerprint: datahub_fp,
            // Pinning the peer's audit key makes its receipt verifiable now.
            peer_audit_key: Some(datahub_audit_key),
        },
        OutputMode::Initiator,
    );
    config.dataset = "kp-2026".into();
    config.own_dataset = DatasetRef::new("crm", [7; 16]);
    config.purpose = "ABM coverage check".into();
    config.legal_basis = "consent".into();
    let mut acme = Initiator::new(config, crm, Box::new(acme_signer), &mut rand::rng())?;
    let mut datahub = Responder::new(
        ResponderConfig::new(
            channel_binding,
            Parties {
                own_fingerprint: datahub_fp,
                peer_fingerprint: acme_fp,
                peer_audit_key: Some(acme_audit_key),
            },
        ),
        Box::new(datahub_signer),
    );

    // 4. Move frames until both are done.
    let (acme_outcome, datahub_outcome) = run(&mut acme, &mut datahub, provider)?;

    // 5. What each side learned.
    let matches = acme_outcome.matches.unwrap_or_default();
    println!("acme: {} of its 3 records matched", matches.len());
    for matched in &matches {
        println!("  record {} matched by {}", matched.record, matched.kinds);
    }
    println!(
        "datahub: learned which matched? {}",
        datahub_outcome.matches.is_some()
    );
    println!(
        "both confirmed transcript {}",
        hex::encode(&acme_outcome.transcript_hash[..8])
    );
    assert_eq!(matches.len(), 2, "records 0 and 1 are in both lists");
    assert!(datahub_outcome.matches.is_none());
    assert_eq!(
        acme_outcome.transcript_hash,
        datahub_outcome.transcript_hash
    );
    Ok(())
}

/// Normalises `(email, phone)` contacts into a prepared set, record `i` for contact `i`.
fn prepare(
    normaliser: &Normaliser,
    contacts: &[(&str, &str)],
) -> Result<PreparedSet, Box<dyn std::error::Error>> {
    let mut builder = PreparedSetBuilder::new();
    for (record, (email, phone)) in contacts.iter().enumerate() {
        builder.add(record as u32, &normaliser.email(email)?);
        builder.add(record as u32, &normaliser.phone(phone)?);
    }
    Ok(builder.build())
}

/// Drives both state machines against each other, as a transport would: frames in
/// order, events answered as they come. The responder's policy decision (accept on
/// `HelloReceived`) and the initiator's (confirm on `Accepted`) are where a node checks
/// its policy; here both agree.
fn run(
    acme: &mut Initiator,
    datahub: &mut Responder,
    provider_set: PreparedSet,
) -> Result<(Outcome, Outcome), Box<dyn std::error::Error>> {
    let mut to_datahub: VecDeque<Vec<u8>> = VecDeque::new();
    let mut to_acme: VecDeque<Vec<u8>> = VecDeque::new();
    let mut provider_set = Some(provider_set);
    let (mut acme_done, mut datahub_done) = (None, None);
    while acme_done.is_none() || datahub_done.is_none() {
        to_datahub.extend(std::iter::from_fn(|| acme.poll_transmit()));
        to_acme.extend(std::iter::from_fn(|| datahub.poll_transmit()));
        if let Some(frame) = to_datahub.pop_front() {
            datahub.handle_frame(&frame)?;
        }
        if let Some(frame) = to_acme.pop_front() {
            acme.handle_frame(&frame)?;
        }
        while let Some(event) = datahub.poll_event() {
            match event {
                Event::HelloReceived(hello) => {
                    println!(
                        "datahub: acme asks for mode {} with {} identifiers",
                        hello.mode, hello.set_size
                    );
                    let set = provider_set.take().ok_or("a second Hello")?;
                    datahub.accept(set, DatasetRef::new("kp-2026", [9; 16]), &mut rand::rng())?;
                }
                Event::Completed(outcome) => datahub_done = Some(*outcome),
                Event::Failed(err) => return Err(err.into()),
                _ => {}
            }
        }
        while let Some(event) = acme.poll_event() {
            match event {
                Event::Accepted(info) => {
                    println!(
                        "acme: datahub accepted with {} identifiers",
                        info.peer_set_size
                    );
                    acme.confirm()?;
                }
                Event::Completed(outcome) => acme_done = Some(*outcome),
                Event::Failed(err) => return Err(err.into()),
                _ => {}
            }
        }
        if acme.is_closed() && datahub.is_closed() && to_acme.is_empty() && to_datahub.is_empty() {
            break;
        }
    }
    match (acme_done, datahub_done) {
        (Some(a), Some(b)) => Ok((a, b)),
        _ => Err("a session ended without an outcome".into()),
    }
}
