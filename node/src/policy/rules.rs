//! The rules decided from `Hello` and the configuration alone: dataset, output mode,
//! purpose, legal basis, size cap, disclosure threshold; and the ratio, once the
//! offered set's size is known.

use blindmatch_protocol::wire::{Hello, OutputMode, RejectReason};

use super::Refusal;
use crate::config::{AllowedMode, BelowThreshold, PeerConfig, PeerPolicy};

/// The config's name for a wire output mode.
pub fn allowed_mode(mode: OutputMode) -> AllowedMode {
    match mode {
        OutputMode::Both => AllowedMode::Both,
        OutputMode::Initiator => AllowedMode::Initiator,
        OutputMode::Responder => AllowedMode::Responder,
        OutputMode::Cardinality => AllowedMode::Cardinality,
    }
}

/// Decides a session request from `peer` on what `Hello` declares. On success returns
/// the dataset to match. Budgets, rate limits, replay and the ratio are checked later
/// (see [`super::PolicyGuard`] and [`check_ratio`]).
pub fn decide(peer: &PeerConfig, hello: &Hello) -> Result<String, Refusal> {
    let dataset = choose_dataset(peer, hello)?;
    check_mode(peer, hello.mode)?;
    check_purpose(&peer.policy, &hello.purpose)?;
    check_legal_basis(&peer.policy, &hello.legal_basis)?;
    if let Some(max) = peer.max_peer_set_size
        && hello.set_size > max
    {
        return Err(Refusal::new(
            RejectReason::SET_TOO_LARGE,
            format!(
                "your set of {} identifiers exceeds the limit of {max} per session for you",
                hello.set_size
            ),
        ));
    }
    Ok(dataset)
}

/// Step 1 for the initiator, on the responder's `Accept` (and, for the mode, before we
/// connect): the mode must be one we use with this peer (`match_modes`), and, when it
/// learns from our answers, its set no larger than `max_peer_set_size`. The refusal is
/// ours, shown to our own operator.
pub fn decide_as_initiator(
    peer: &PeerConfig,
    mode: OutputMode,
    peer_set_size: Option<u64>,
) -> Result<(), Refusal> {
    if !peer.allows_match_mode(allowed_mode(mode)) {
        let allowed: Vec<String> = peer.match_modes.iter().map(|m| format!("`{m}`")).collect();
        return Err(Refusal::new(
            RejectReason::MODE_NOT_ALLOWED,
            format!(
                "this node's policy does not start `{mode}` sessions with `{}` ({}); allowed: {}. To allow it, add \"{mode}\" to `match_modes` of the peer in node.toml",
                peer.name,
                mode_meaning(mode),
                list_or_none(&allowed)
            ),
        ));
    }
    let peer_learns = blindmatch_protocol::session::learns_count(
        mode,
        blindmatch_protocol::session::Role::Responder,
    );
    if let (Some(max), Some(size), true) = (peer.max_peer_set_size, peer_set_size, peer_learns)
        && size > max
    {
        return Err(Refusal::new(
            RejectReason::SET_TOO_LARGE,
            format!(
                "`{}` would test a set of {size} elements against ours, above the limit of {max} per session set for it in node.toml (max_peer_set_size)",
                peer.name
            ),
        ));
    }
    Ok(())
}

/// Who learns what in `mode`, in a few words for refusals and `--help`.
pub fn mode_meaning(mode: OutputMode) -> &'static str {
    match mode {
        OutputMode::Both => "each side learns which of its own records matched",
        OutputMode::Initiator => "the initiator learns its matched records, the responder nothing",
        OutputMode::Responder => "the responder learns its matched records, the initiator nothing",
        OutputMode::Cardinality => {
            "both learn only the count; against a dishonest peer as revealing as `initiator`"
        }
    }
}

/// Refuses a peer set larger than the configured ratio to ours allows. As responder the
/// text (which the peer sees) names the limit, never our set size.
pub fn check_ratio(
    policy: &PeerPolicy,
    role: blindmatch_protocol::session::Role,
    peer_size: u64,
    our_size: u64,
) -> Result<(), Refusal> {
    let Some(ratio) = policy.max_set_ratio else {
        return Ok(());
    };
    if !ratio.exceeded_by(peer_size, our_size) {
        return Ok(());
    }
    let text = match role {
        blindmatch_protocol::session::Role::Responder => format!(
            "your set of {peer_size} identifiers is more than {ratio} times the set offered to you (max_set_ratio); send fewer"
        ),
        blindmatch_protocol::session::Role::Initiator => format!(
            "the peer's set of {peer_size} elements is more than {ratio} times ours ({our_size}), the max_set_ratio set for it in node.toml"
        ),
    };
    Err(Refusal::new(RejectReason::RATIO_TOO_HIGH, text))
}

/// The output modes a peer may really use: its configured modes minus those a
/// disclosure threshold rules out (see [`threshold_forbids`]).
pub fn effective_modes(peer: &PeerConfig) -> Vec<AllowedMode> {
    peer.modes
        .iter()
        .copied()
        .filter(|mode| threshold_forbids(&peer.policy, *mode).is_none())
        .collect()
}

/// Why a disclosure threshold rules out `mode`, if it does.
///
/// The initiator computes its own view: the responder cannot withhold from it what
/// the mode gives it once the exchange has run. So with a threshold, modes in which
/// the initiator learns records are refused; with `below_threshold = "nothing"`,
/// `cardinality` too, since the initiator would learn even a tiny count.
pub fn threshold_forbids(policy: &PeerPolicy, mode: AllowedMode) -> Option<String> {
    let threshold = policy.disclosure_threshold?;
    match (mode, policy.below_threshold) {
        (AllowedMode::Both | AllowedMode::Initiator, below) => Some(format!(
            "this node discloses matched records only for intersections of at least {threshold}, which it cannot enforce on your side; ask for {}",
            if below == BelowThreshold::Count {
                "`cardinality` or `responder`"
            } else {
                "`responder`"
            }
        )),
        (AllowedMode::Cardinality, BelowThreshold::Nothing) => Some(format!(
            "this node discloses nothing, not even the count, for intersections under {threshold}, which it cannot enforce on your side; ask for `responder`"
        )),
        _ => None,
    }
}

fn choose_dataset(peer: &PeerConfig, hello: &Hello) -> Result<String, Refusal> {
    if hello.dataset.is_empty() {
        return match peer.offers.as_slice() {
            [only] => Ok(only.clone()),
            [] => Err(Refusal::new(
                RejectReason::DATASET_NOT_OFFERED,
                "this node offers you no dataset; ask its operator to run `blindmatch peer add ... --offer DATASET`".into(),
            )),
            many => Err(Refusal::new(
                RejectReason::DATASET_NOT_OFFERED,
                format!(
                    "name the dataset to match (--remote-dataset); offered to you: {}",
                    many.join(", ")
                ),
            )),
        };
    }
    if peer.offers(&hello.dataset) {
        return Ok(hello.dataset.clone());
    }
    Err(Refusal::new(
        RejectReason::DATASET_NOT_OFFERED,
        format!(
            "dataset `{}` is not offered to you; offered: {}",
            hello.dataset,
            list_or_none(&peer.offers)
        ),
    ))
}

fn check_mode(peer: &PeerConfig, mode: OutputMode) -> Result<(), Refusal> {
    let wanted = allowed_mode(mode);
    if !peer.allows_mode(wanted) {
        let allowed: Vec<String> = effective_modes(peer)
            .iter()
            .map(|m| m.as_str().to_owned())
            .collect();
        return Err(Refusal::new(
            RejectReason::MODE_NOT_ALLOWED,
            format!(
                "output mode `{mode}` is not allowed for you; allowed: {}",
                list_or_none(&allowed)
            ),
        ));
    }
    if let Some(why) = threshold_forbids(&peer.policy, wanted) {
        return Err(Refusal::new(
            RejectReason::MODE_NOT_ALLOWED,
            format!("output mode `{mode}` is not allowed for you: {why}"),
        ));
    }
    Ok(())
}

fn check_purpose(policy: &PeerPolicy, purpose: &str) -> Result<(), Refusal> {
    if policy.allows_purpose(purpose) {
        return Ok(());
    }
    Err(Refusal::new(
        RejectReason::PURPOSE_NOT_ALLOWED,
        format!(
            "purpose `{}` is not allowed for you; allowed purposes: {}",
            printable(purpose),
            quoted(&policy.purposes)
        ),
    ))
}

fn check_legal_basis(policy: &PeerPolicy, basis: &str) -> Result<(), Refusal> {
    if policy.allows_legal_basis(basis) {
        return Ok(());
    }
    let text = if basis.trim().is_empty() {
        if policy.legal_bases.is_empty() {
            "declare the legal basis of this match (--legal-basis)".to_owned()
        } else {
            format!(
                "declare the legal basis of this match (--legal-basis); accepted: {}",
                quoted(&policy.legal_bases)
            )
        }
    } else {
        format!(
            "legal basis `{}` is not accepted for you; accepted: {}",
            printable(basis),
            quoted(&policy.legal_bases)
        )
    };
    Err(Refusal::new(RejectReason::LEGAL_BASIS_NOT_ALLOWED, text))
}

/// The peer's text, shortened and with control characters escaped (the one escaping
/// rule, [`blindmatch_protocol::wire::printable`]), for echoing back.
fn printable(text: &str) -> String {
    let shown: String = text.chars().take(80).collect();
    let escaped = blindmatch_protocol::wire::printable(&shown);
    if text.chars().count() > 80 {
        format!("{escaped}…")
    } else {
        escaped
    }
}

fn quoted(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("`{i}`")).collect();
    list_or_none(&quoted)
}

fn list_or_none(items: &[String]) -> String {
    if items.is_empty() {
        "none".to_owned()
    } else {
        items.join(", ")
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {

    use super::*;
    use crate::config::{PeerAddr, SetRatio};

    fn peer() -> PeerConfig {
        let addr: PeerAddr = "127.0.0.1:7447".parse().unwrap();
        let fp = "aa00000000000000000000000000000000000000000000000000000000000001"
            .parse()
            .unwrap();
        let mut peer = PeerConfig::new("bob", addr, fp);
        peer.offers = vec!["kp".into()];
        peer
    }

    fn hello(mode: OutputMode, purpose: &str, basis: &str, size: u64) -> Hello {
        let mut hello = Hello::new([1; 16], mode, size, [0; 32]);
        hello.purpose = purpose.into();
        hello.legal_basis = basis.into();
        hello
    }

    fn reason(peer: &PeerConfig, hello: &Hello) -> RejectReason {
        decide(peer, hello).unwrap_err().reason
    }

    #[test]
    fn defaults_allow_any_purpose_and_basis() {
        let h = hello(OutputMode::Both, "anything", "", 10);
        assert_eq!(decide(&peer(), &h).unwrap(), "kp");
    }

    #[test]
    fn purposes_and_legal_bases() {
        let mut p = peer();
        p.policy.purposes = vec!["ABM coverage".into()];
        p.policy.legal_bases = vec!["consent".into(), "contract".into()];
        let ok = hello(OutputMode::Both, " abm coverage ", "Consent", 10);
        assert!(decide(&p, &ok).is_ok());
        let bad_purpose = hello(OutputMode::Both, "resale", "consent", 10);
        assert_eq!(reason(&p, &bad_purpose), RejectReason::PURPOSE_NOT_ALLOWED);
        let no_basis = hello(OutputMode::Both, "abm coverage", "", 10);
        assert_eq!(reason(&p, &no_basis), RejectReason::LEGAL_BASIS_NOT_ALLOWED);
        let other_basis = hello(OutputMode::Both, "abm coverage", "legitimate interest", 10);
        let refusal = decide(&p, &other_basis).unwrap_err();
        assert_eq!(refusal.reason, RejectReason::LEGAL_BASIS_NOT_ALLOWED);
        assert!(
            refusal.text.contains("`consent`, `contract`"),
            "{}",
            refusal.text
        );

        let mut q = peer();
        q.policy.require_legal_basis = true;
        assert_eq!(
            reason(&q, &hello(OutputMode::Both, "x", " ", 1)),
            RejectReason::LEGAL_BASIS_NOT_ALLOWED
        );
        assert!(decide(&q, &hello(OutputMode::Both, "x", "anything", 1)).is_ok());
    }

    #[test]
    fn size_cap_and_ratio() {
        let mut p = peer();
        p.max_peer_set_size = Some(100);
        assert!(decide(&p, &hello(OutputMode::Both, "x", "", 100)).is_ok());
        assert_eq!(
            reason(&p, &hello(OutputMode::Both, "x", "", 101)),
            RejectReason::SET_TOO_LARGE
        );
        p.policy.max_set_ratio = SetRatio::from_f64(0.5);
        let responder = blindmatch_protocol::session::Role::Responder;
        assert!(check_ratio(&p.policy, responder, 50, 100).is_ok());
        let refusal = check_ratio(&p.policy, responder, 51, 100).unwrap_err();
        assert_eq!(refusal.reason, RejectReason::RATIO_TOO_HIGH);
        assert!(
            !refusal.text.contains("100"),
            "never our set size: {}",
            refusal.text
        );
        assert!(check_ratio(&PeerPolicy::default(), responder, u64::MAX, 0).is_ok());
    }

    #[test]
    fn threshold_rules_out_modes_the_responder_cannot_enforce() {
        let mut p = peer();
        p.policy.disclosure_threshold = Some(5);
        for mode in [OutputMode::Both, OutputMode::Initiator] {
            assert_eq!(
                reason(&p, &hello(mode, "x", "", 1)),
                RejectReason::MODE_NOT_ALLOWED
            );
        }
        assert!(decide(&p, &hello(OutputMode::Cardinality, "x", "", 1)).is_ok());
        assert!(decide(&p, &hello(OutputMode::Responder, "x", "", 1)).is_ok());
        p.policy.below_threshold = BelowThreshold::Nothing;
        assert_eq!(
            reason(&p, &hello(OutputMode::Cardinality, "x", "", 1)),
            RejectReason::MODE_NOT_ALLOWED
        );
        assert_eq!(effective_modes(&p), [AllowedMode::Responder]);
    }

    #[test]
    fn echoed_text_is_cleaned() {
        let mut p = peer();
        p.policy.purposes = vec!["a".into()];
        let refusal = decide(&p, &hello(OutputMode::Both, "x\u{1b}[31my", "", 1)).unwrap_err();
        assert!(!refusal.text.contains('\u{1b}'));
    }
}
