//! How transport failures are classified: the peer going away has its own close code
//! and says so in words, our own failures stay internal, timeouts stay timeouts.

use super::*;

fn gone_cases() -> Vec<TransportError> {
    vec![
        TransportError::StreamReset { code: 0 },
        TransportError::StreamStopped { code: 3 },
        TransportError::PeerClosed {
            code: CloseCode::CANCELLED,
            reason: "bye".into(),
        },
        TransportError::PeerClosed {
            code: CloseCode::OK,
            reason: String::new(),
        },
        TransportError::Connection {
            addr: None,
            source: quinn::ConnectionError::Reset,
        },
    ]
}

#[test]
fn a_peer_that_goes_away_mid_session_is_peer_gone_not_internal() {
    for err in gone_cases() {
        let shown = err.to_string();
        let err = DriverError::from(err);
        assert!(matches!(err, DriverError::PeerGone(_)), "{shown}: {err:?}");
        assert_eq!(err.close_code(), CloseCode::PEER_GONE, "{shown}");
        let text = err.to_string();
        assert!(
            text.starts_with("the peer closed the connection mid-session"),
            "{shown}: {text}"
        );
    }
    let early = DriverError::PeerClosedEarly;
    assert_eq!(early.close_code(), CloseCode::PEER_GONE);
    assert!(
        early
            .to_string()
            .starts_with("the peer closed the connection mid-session")
    );
}

#[test]
fn the_peer_close_code_and_reason_are_named() {
    let err = DriverError::from(TransportError::PeerClosed {
        code: CloseCode::CANCELLED,
        reason: "shutting down".into(),
    });
    let text = err.to_string();
    assert!(text.contains("cancelled (7)"), "{text}");
    assert!(text.contains("shutting down"), "{text}");
    let err = DriverError::from(TransportError::StreamReset { code: 42 });
    assert!(
        err.to_string()
            .contains("reset the session stream (code 42)")
    );
}

#[test]
fn our_own_failures_and_timeouts_keep_their_codes() {
    let internal = [
        TransportError::StreamClosed,
        TransportError::Exporter,
        TransportError::Connection {
            addr: None,
            source: quinn::ConnectionError::LocallyClosed,
        },
    ];
    for err in internal {
        let err = DriverError::from(err);
        assert!(matches!(err, DriverError::Transport(_)), "{err:?}");
        assert_eq!(err.close_code(), CloseCode::INTERNAL, "{err}");
    }
    let framing = [
        TransportError::FrameTooLarge {
            len: 1 << 30,
            max: 1 << 20,
        },
        TransportError::TruncatedFrame {
            expected: 10,
            got: 3,
        },
    ];
    for err in framing {
        assert_eq!(
            DriverError::from(err).close_code(),
            CloseCode::INVALID_MESSAGE
        );
    }
    let quic_idle = DriverError::from(TransportError::TimedOut { addr: None });
    assert_eq!(quic_idle.close_code(), CloseCode::TIMEOUT);
    assert!(quic_idle.to_string().contains("idle timeout"));
    assert_eq!(
        DriverError::Timeout(Duration::from_secs(3)).close_code(),
        CloseCode::TIMEOUT
    );
    assert_eq!(DriverError::Cancelled.close_code(), CloseCode::CANCELLED);
}
