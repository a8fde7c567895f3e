use super::*;

const FP_A: &str = "aa00000000000000000000000000000000000000000000000000000000000001";
const FP_B: &str = "bb00000000000000000000000000000000000000000000000000000000000002";

fn full() -> String {
    format!(
        r#"
[node]
name = "acme"
listen = "127.0.0.1:7447"

[limits]
max_concurrent_sessions = 4
idle_timeout_secs = 60

[[peers]]
name = "bob"
addr = "bob.example.com:7447"
fingerprint = "sha256:{FP_A}"
offers = ["crm", "leads"]
modes = ["cardinality", "both"]
max_peer_set_size = 1000000

[[peers]]
name = "carol"
addr = "[::1]:9000"
fingerprint = "{FP_B}"
"#
    )
}

fn invalid_key(text: &str) -> (String, String) {
    match NodeConfig::parse(text, Some(Path::new("/data/node.toml"))) {
        Err(ConfigError::Invalid { key, problem, .. }) => (key, problem),
        other => panic!("expected an invalid-value error, got {other:?}"),
    }
}

#[test]
fn an_offer_without_modes_is_refused() {
    let text = full().replace("modes = [\"cardinality\", \"both\"]\n", "");
    let (key, problem) = invalid_key(&text);
    assert!(key.ends_with("modes"), "{key}");
    assert!(
        problem.contains("required when `offers` is not empty"),
        "{problem}"
    );
}

#[test]
fn parses_a_full_file() {
    let config = NodeConfig::parse(&full(), None).unwrap();
    assert_eq!(config.node.name, "acme");
    assert_eq!(config.node.listen, "127.0.0.1:7447".parse().unwrap());
    assert_eq!(config.limits.max_concurrent_sessions, 4);
    assert_eq!(config.limits.idle_timeout, Duration::from_secs(60));
    let bob = config.peer("bob").unwrap();
    assert_eq!(bob.addr.host(), "bob.example.com");
    assert_eq!(bob.addr.port(), 7447);
    assert_eq!(bob.fingerprint.to_string(), FP_A);
    assert_eq!(bob.offers, ["crm", "leads"]);
    assert!(bob.offers("crm") && !bob.offers("other"));
    assert_eq!(bob.modes, [AllowedMode::Cardinality, AllowedMode::Both]);
    assert!(!bob.allows_mode(AllowedMode::Initiator));
    assert_eq!(bob.max_peer_set_size, Some(1_000_000));
    let carol = config.peer("carol").unwrap();
    assert_eq!(carol.addr.to_string(), "[::1]:9000");
    assert!(carol.modes.is_empty(), "no offers, no modes");
    assert!(carol.offers.is_empty());
    assert_eq!(carol.max_peer_set_size, None);
    let fp_b: Fingerprint = FP_B.parse().unwrap();
    assert_eq!(config.peer_by_fingerprint(&fp_b).unwrap().name, "carol");
    assert_eq!(config.pinned_fingerprints().len(), 2);
}

#[test]
fn defaults_apply() {
    let config = NodeConfig::parse("[node]\nname = \"acme\"\n", None).unwrap();
    assert_eq!(config.node.listen, DEFAULT_LISTEN.parse().unwrap());
    assert_eq!(config.limits, Limits::default());
    assert_eq!(config.limits.max_concurrent_sessions, 16);
    assert_eq!(config.limits.idle_timeout, Duration::from_secs(30));
    assert!(config.peers().is_empty());
    assert_eq!(config, NodeConfig::new("acme").unwrap());
}

#[test]
fn save_and_load_round_trip() {
    let data = tempfile::tempdir().unwrap();
    let config = NodeConfig::parse(&full(), None).unwrap();
    config.save(data.path()).unwrap();
    assert_eq!(NodeConfig::load(data.path()).unwrap(), config);
    // Saving again replaces the file.
    let mut changed = config.clone();
    changed.remove_peer("bob").unwrap();
    changed.save(data.path()).unwrap();
    assert_eq!(NodeConfig::load(data.path()).unwrap(), changed);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(NodeConfig::path(data.path()))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

#[test]
fn saved_file_lists_modes_explicitly() {
    let config = NodeConfig::parse(&full(), None).unwrap();
    let text = config.to_toml().unwrap();
    // Both lists of every peer are written, empty ones too, so the file says what
    // each peer may do rather than leaving it to a default.
    assert!(
        text.contains(r#"modes = ["cardinality", "both"]"#),
        "{text}"
    );
    assert_eq!(text.matches("\nmodes = ").count(), 2, "{text}");
    assert_eq!(text.matches("\nmatch_modes = ").count(), 2, "{text}");
    assert_eq!(NodeConfig::parse(&text, None).unwrap(), config);
}

#[test]
fn missing_file_says_to_init() {
    let data = tempfile::tempdir().unwrap();
    let err = NodeConfig::load(data.path()).unwrap_err();
    assert!(matches!(err, ConfigError::NotFound { .. }));
    assert!(err.to_string().contains("blindmatch init"), "{err}");
}

#[test]
fn unknown_keys_are_errors_naming_the_key() {
    for (text, key) in [
        ("[node]\nname = \"a\"\nlisten_addr = \"x\"\n", "listen_addr"),
        ("[node]\nname = \"a\"\n[limitz]\n", "limitz"),
        (
            "[node]\nname = \"a\"\n[[peers]]\nname = \"b\"\naddr = \"h:1\"\nfingerprint = \"x\"\nofers = []\n",
            "ofers",
        ),
    ] {
        let err = NodeConfig::parse(text, Some(Path::new("/data/node.toml"))).unwrap_err();
        let message = err.to_string();
        assert!(matches!(err, ConfigError::Parse { .. }), "{message}");
        assert!(message.contains(key), "{message}");
        assert!(message.starts_with("/data/node.toml"), "{message}");
    }
}

#[test]
fn bad_values_name_their_key() {
    let base = full();
    let cases = [
        (
            base.replace("sha256:aa", "sha256:zz"),
            "peers[0].fingerprint",
            "not a SHA-256 fingerprint",
        ),
        (
            base.replace(FP_B, "abcd"),
            "peers[1].fingerprint",
            "not a SHA-256 fingerprint",
        ),
        (
            base.replace("\"cardinality\"", "\"everything\""),
            "peers[0].modes[0]",
            "unknown output mode",
        ),
        (
            base.replace("\"cardinality\", \"both\"", "\"both\", \"both\""),
            "peers[0].modes[1]",
            "twice",
        ),
        (
            base.replace("[::1]:9000", "::1:9000"),
            "peers[1].addr",
            "brackets",
        ),
        (
            base.replace("bob.example.com:7447", "bob.example.com"),
            "peers[0].addr",
            "host:port",
        ),
        (
            base.replace("bob.example.com:7447", "bob.example.com:0"),
            "peers[0].addr",
            "port",
        ),
        (
            base.replace("bob.example.com:7447", "bob_x.com:1"),
            "peers[0].addr",
            "host name",
        ),
        (
            base.replace("\"leads\"", "\"crm\""),
            "peers[0].offers[1]",
            "twice",
        ),
        (
            base.replace("\"leads\"", "\"my leads\""),
            "peers[0].offers[1]",
            "dataset name",
        ),
        (
            base.replace("1000000", "0"),
            "peers[0].max_peer_set_size",
            "at least 1",
        ),
        (
            base.replace("\"carol\"", "\"bob\""),
            "peers[1].name",
            "unique",
        ),
        (
            base.replace(FP_B, FP_A),
            "peers[1].fingerprint",
            "only once",
        ),
        (base.replace("\"carol\"", "\"\""), "peers[1].name", "empty"),
        (
            base.replace("name = \"acme\"", "name = \"a c\""),
            "node.name",
            "letters",
        ),
        (
            base.replace("127.0.0.1:7447", "localhost:7447"),
            "node.listen",
            "IP address",
        ),
        (
            base.replace("= 4", "= 0"),
            "limits.max_concurrent_sessions",
            "outside",
        ),
        (
            base.replace("= 60", "= 0"),
            "limits.idle_timeout_secs",
            "outside",
        ),
        (
            base.replace("= 60", "= 100000"),
            "limits.idle_timeout_secs",
            "outside",
        ),
    ];
    for (text, want_key, want_problem) in cases {
        let (key, problem) = invalid_key(&text);
        assert_eq!(key, want_key, "{problem}");
        assert!(problem.contains(want_problem), "{key}: {problem}");
    }
    let err = NodeConfig::parse(
        &base.replace(FP_B, "abcd"),
        Some(Path::new("/data/node.toml")),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.starts_with("/data/node.toml: peers[1].fingerprint: not a SHA-256 fingerprint"),
        "{err}"
    );
}

#[test]
fn wrong_types_are_parse_errors() {
    let err = NodeConfig::parse("[node]\nname = 5\n", None).unwrap_err();
    assert!(matches!(err, ConfigError::Parse { .. }), "{err}");
    let err = NodeConfig::parse("", None).unwrap_err();
    assert!(err.to_string().contains("node"), "{err}");
}

#[test]
fn add_and_remove_peers() {
    let mut config = NodeConfig::new("acme").unwrap();
    let fp_a: Fingerprint = FP_A.parse().unwrap();
    let fp_b: Fingerprint = FP_B.parse().unwrap();
    let addr: PeerAddr = "10.0.0.5:7447".parse().unwrap();
    config
        .add_peer(PeerConfig::new("bob", addr.clone(), fp_a))
        .unwrap();

    let err = config
        .add_peer(PeerConfig::new("bob", addr.clone(), fp_b))
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::DuplicatePeerName { .. }),
        "{err}"
    );
    let err = config
        .add_peer(PeerConfig::new("carol", addr.clone(), fp_a))
        .unwrap_err();
    assert!(
        matches!(err, ConfigError::DuplicateFingerprint { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("`bob`"), "{err}");
    let err = config
        .add_peer(PeerConfig::new("no spaces", addr.clone(), fp_b))
        .unwrap_err();
    assert!(err.to_string().starts_with("peer.name:"), "{err}");

    config
        .add_peer(PeerConfig::new("carol", addr, fp_b))
        .unwrap();
    assert_eq!(config.peers().len(), 2);
    config
        .peer_mut("carol")
        .unwrap()
        .offers
        .push("crm".to_owned());
    assert!(config.peer("carol").unwrap().offers("crm"));
    config.peer_mut("carol").unwrap().fingerprint = fp_a;
    let err = config.to_toml().unwrap_err();
    assert!(err.to_string().contains("only once"), "{err}");
    config.peer_mut("carol").unwrap().fingerprint = fp_b;
    let removed = config.remove_peer("bob").unwrap();
    assert_eq!(removed.fingerprint, fp_a);
    assert!(config.peer_by_fingerprint(&fp_a).is_none());
    let err = config.remove_peer("bob").unwrap_err();
    assert!(matches!(err, ConfigError::UnknownPeer { .. }));
    assert!(err.to_string().contains("known peers: carol"), "{err}");
}

#[test]
fn allowed_mode_names() {
    for mode in AllowedMode::ALL {
        assert_eq!(mode.to_string().parse::<AllowedMode>().unwrap(), mode);
    }
    assert!("Both".parse::<AllowedMode>().is_err());
    #[derive(Deserialize, Serialize)]
    struct Holder {
        mode: AllowedMode,
    }
    let holder: Holder = toml::from_str("mode = \"cardinality\"").unwrap();
    assert_eq!(holder.mode, AllowedMode::Cardinality);
    assert_eq!(
        toml::to_string(&holder).unwrap(),
        "mode = \"cardinality\"\n"
    );
}

#[test]
fn peer_addr_forms() {
    for (text, host, port) in [
        ("partner.example.com:7447", "partner.example.com", 7447),
        ("10.0.0.5:1", "10.0.0.5", 1),
        ("[2001:db8::5]:7447", "2001:db8::5", 7447),
        ("localhost:65535", "localhost", 65535),
    ] {
        let addr: PeerAddr = text.parse().unwrap();
        assert_eq!((addr.host(), addr.port()), (host, port));
        assert_eq!(addr.to_string(), text);
    }
    for bad in [
        "",
        ":7447",
        "host:",
        "host:70000",
        "[::1:7447",
        "[nope]:1",
        "-x.com:1",
        "a..b:1",
    ] {
        assert!(bad.parse::<PeerAddr>().is_err(), "{bad}");
    }
    let from_socket = PeerAddr::from("[::1]:5".parse::<SocketAddr>().unwrap());
    assert_eq!(from_socket.to_string(), "[::1]:5");
}

#[tokio::test]
async fn peer_addr_resolves_literals() {
    let addr: PeerAddr = "127.0.0.1:7447".parse().unwrap();
    assert_eq!(
        addr.resolve("bob").await.unwrap(),
        "127.0.0.1:7447".parse().unwrap()
    );
}

fn with_policy() -> String {
    format!(
        r#"
[node]
name = "vendor"

[limits]
replay_window_days = 30

[[peers]]
name = "acme"
addr = "acme.example.com:7447"
fingerprint = "{FP_A}"
offers = ["kp"]
modes = ["cardinality", "responder"]
max_peer_set_size = 50000
purposes = ["ABM coverage check", "lead deduplication"]
legal_bases = ["consent", "contract"]
require_legal_basis = true
max_set_ratio = 0.5
max_identifiers_per_day = 200000
max_identifiers_total = 5000000
max_sessions_per_hour = 10
max_concurrent_sessions = 2
disclosure_threshold = 5
below_threshold = "nothing"

[[peers]]
name = "old"
addr = "old.example.com:7447"
fingerprint = "{FP_B}"
offers = ["kp"]
modes = ["cardinality"]
max_set_ratio = 2

[datasets.kp]
require_legal_basis = true
require_source = true
legal_bases = ["consent"]
"#
    )
}

#[test]
fn policy_keys_parse_and_default_to_no_restriction() {
    let config = NodeConfig::parse(&with_policy(), None).unwrap();
    assert_eq!(config.limits.replay_window_days, 30);
    let acme = &config.peer("acme").unwrap().policy;
    assert_eq!(acme.purposes, ["ABM coverage check", "lead deduplication"]);
    assert!(acme.allows_purpose("abm coverage check") && !acme.allows_purpose("resale"));
    assert!(acme.requires_legal_basis() && acme.allows_legal_basis("Contract"));
    assert_eq!(acme.max_set_ratio, SetRatio::from_f64(0.5));
    assert_eq!(acme.max_identifiers_per_day, Some(200_000));
    assert_eq!(acme.max_identifiers_total, Some(5_000_000));
    assert_eq!(acme.max_sessions_per_hour, Some(10));
    assert_eq!(acme.max_concurrent_sessions, Some(2));
    assert_eq!(acme.disclosure_threshold, Some(5));
    assert_eq!(acme.below_threshold, BelowThreshold::Nothing);
    let old = &config.peer("old").unwrap().policy;
    assert_eq!(old.max_set_ratio.unwrap().as_f64(), 2.0);
    assert_eq!(
        *old,
        PeerPolicy {
            max_set_ratio: old.max_set_ratio,
            ..PeerPolicy::default()
        }
    );
    let kp = config.dataset_policy("kp");
    assert!(kp.require_legal_basis && kp.require_source && !kp.require_consent);
    assert!(config.dataset_policy("other").is_open());
    // A file without any policy key means what it meant before.
    let plain = NodeConfig::parse(&full(), None).unwrap();
    assert_eq!(plain.peer("bob").unwrap().policy, PeerPolicy::default());
    assert!(plain.datasets.is_empty());
    assert_eq!(plain.limits.replay_window_days, DEFAULT_REPLAY_WINDOW_DAYS);
}

#[test]
fn policy_keys_round_trip() {
    let data = tempfile::tempdir().unwrap();
    let config = NodeConfig::parse(&with_policy(), None).unwrap();
    config.save(data.path()).unwrap();
    assert_eq!(NodeConfig::load(data.path()).unwrap(), config);
    let plain = NodeConfig::parse(&full(), None).unwrap();
    let text = plain.to_toml().unwrap();
    for key in ["purposes", "max_set_ratio", "below_threshold", "[datasets"] {
        assert!(!text.contains(key), "unset `{key}` is not written: {text}");
    }
}

#[test]
fn bad_policy_values_name_their_key() {
    let base = with_policy();
    let cases = [
        (
            base.replace("max_set_ratio = 0.5", "max_set_ratio = 0"),
            "peers[0].max_set_ratio",
            "outside",
        ),
        (
            base.replace("max_set_ratio = 2", "max_set_ratio = -1.5"),
            "peers[1].max_set_ratio",
            "outside",
        ),
        (
            base.replace("\"lead deduplication\"", "\"abm COVERAGE check\""),
            "peers[0].purposes[1]",
            "twice",
        ),
        (
            base.replace("\"contract\"]", "\" \"]"),
            "peers[0].legal_bases[1]",
            "empty",
        ),
        (
            base.replace(
                "max_identifiers_per_day = 200000",
                "max_identifiers_per_day = 0",
            ),
            "peers[0].max_identifiers_per_day",
            "at least 1",
        ),
        (
            base.replace("max_sessions_per_hour = 10", "max_sessions_per_hour = 0"),
            "peers[0].max_sessions_per_hour",
            "at least 1",
        ),
        (
            base.replace(
                "max_concurrent_sessions = 2",
                "max_concurrent_sessions = 99999999999",
            ),
            "peers[0].max_concurrent_sessions",
            "larger",
        ),
        (
            base.replace("\"nothing\"", "\"records\""),
            "peers[0].below_threshold",
            "count",
        ),
        (
            base.replace("disclosure_threshold = 5\n", ""),
            "peers[0].below_threshold",
            "disclosure_threshold",
        ),
        (
            base.replace("replay_window_days = 30", "replay_window_days = 0"),
            "limits.replay_window_days",
            "outside",
        ),
        (
            base.replace("legal_bases = [\"consent\"]\n", "legal_bases = [\"\"]\n"),
            "datasets.kp.legal_bases[0]",
            "empty",
        ),
        (
            base.replace("[datasets.kp]", "[datasets.\"k p\"]"),
            "datasets.k p",
            "dataset name",
        ),
    ];
    for (text, want_key, want_problem) in cases {
        assert_ne!(text, base, "case for {want_key} changed nothing");
        let (key, problem) = invalid_key(&text);
        assert_eq!(key, want_key, "{problem}");
        assert!(problem.contains(want_problem), "{key}: {problem}");
    }
    let err = NodeConfig::parse(
        &base.replace("require_source", "require_sauce"),
        Some(Path::new("/data/node.toml")),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("require_sauce"), "{err}");
}

#[test]
fn connect_timeout_defaults_to_ten_seconds_and_is_written_only_when_changed() {
    let data = tempfile::tempdir().unwrap();
    let mut config = NodeConfig::parse(&full(), None).unwrap();
    assert_eq!(config.limits.connect_timeout, Duration::from_secs(10));
    config.save(data.path()).unwrap();
    let text = std::fs::read_to_string(NodeConfig::path(data.path())).unwrap();
    assert!(!text.contains("connect_timeout_secs"), "{text}");
    config.limits.connect_timeout = Duration::from_secs(25);
    config.save(data.path()).unwrap();
    let loaded = NodeConfig::load(data.path()).unwrap();
    assert_eq!(loaded.limits.connect_timeout, Duration::from_secs(25));
    for bad in ["0", "100000"] {
        let text = full().replace(
            "idle_timeout_secs = 60",
            &format!("idle_timeout_secs = 60\nconnect_timeout_secs = {bad}"),
        );
        let (key, problem) = invalid_key(&text);
        assert_eq!(key, "limits.connect_timeout_secs", "{problem}");
    }
}
