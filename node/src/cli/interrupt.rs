//! Ctrl-C (and SIGTERM) in a command that runs sessions as initiator (`match`).
//!
//! The first signal cancels the sessions through [`Node::cancel_sessions`]: each sends
//! `Abort` with close code `cancelled` and is recorded as aborted, so neither audit log
//! is left with a lone `session_requested`. The command then gets [`CANCEL_GRACE`] to
//! record that and close the connection; a second signal, or the grace running out,
//! stops waiting at once. Either way the process exits with [`EXIT_INTERRUPTED`], the
//! shell's code for a process ended by SIGINT.

use std::future::Future;
use std::process::ExitCode;
use std::time::Duration;

use crate::node::Node;

/// How long a cancelled session may take to send its `Abort` and record it.
pub(super) const CANCEL_GRACE: Duration = Duration::from_secs(5);

/// Exit code after Ctrl-C: 128 + SIGINT, as shells report it.
pub(super) const EXIT_INTERRUPTED: u8 = 130;

/// How a piece of work ended.
pub(super) enum Ended<T> {
    /// It ran to its end without a signal.
    Done(T),
    /// A signal came first; the work's own result if it ended within the grace.
    Interrupted(Option<T>),
}

/// Runs `work` until it ends or a signal cancels it (see the module docs).
pub(super) async fn run_cancellable<T>(node: &Node, work: impl Future<Output = T>) -> Ended<T> {
    let mut signals = match Signals::install() {
        Ok(signals) => signals,
        Err(err) => {
            tracing::warn!(error = %err, "Ctrl-C cannot be handled; it ends the process at once");
            return Ended::Done(work.await);
        }
    };
    tokio::pin!(work);
    tokio::select! {
        out = &mut work => return Ended::Done(out),
        () = signals.next() => {}
    }
    eprintln!(
        "interrupted: cancelling the session (the peer is told, both logs record it); Ctrl-C again to quit at once"
    );
    node.cancel_sessions();
    tokio::select! {
        out = &mut work => Ended::Interrupted(Some(out)),
        () = signals.next() => Ended::Interrupted(None),
        () = tokio::time::sleep(CANCEL_GRACE) => Ended::Interrupted(None),
    }
}

/// The work's value; or, when a signal interrupted it and it produced none, the exit
/// code to end with (having said what happened). Work that completed despite the
/// signal reports its value: its results are whole and in both logs.
pub(super) fn result<T, E>(ended: Ended<Result<T, E>>) -> anyhow::Result<Result<T, ExitCode>>
where
    E: Into<anyhow::Error>,
{
    match ended {
        Ended::Done(result) | Ended::Interrupted(Some(result @ Ok(_))) => {
            Ok(Ok(result.map_err(Into::into)?))
        }
        Ended::Interrupted(Some(Err(err))) => {
            let err: anyhow::Error = err.into();
            eprintln!("error: interrupted: {}", super::error_text(&err));
            Ok(Err(ExitCode::from(EXIT_INTERRUPTED)))
        }
        Ended::Interrupted(None) => {
            eprintln!(
                "error: interrupted before the session could be closed cleanly; `blindmatch audit show` shows what was recorded"
            );
            Ok(Err(ExitCode::from(EXIT_INTERRUPTED)))
        }
    }
}

/// SIGINT and SIGTERM.
struct Signals {
    #[cfg(unix)]
    interrupt: tokio::signal::unix::Signal,
    #[cfg(unix)]
    terminate: tokio::signal::unix::Signal,
}

impl Signals {
    fn install() -> std::io::Result<Self> {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            Ok(Self {
                interrupt: signal(SignalKind::interrupt())?,
                terminate: signal(SignalKind::terminate())?,
            })
        }
        #[cfg(not(unix))]
        {
            Ok(Self {})
        }
    }

    async fn next(&mut self) {
        #[cfg(unix)]
        {
            tokio::select! {
                _ = self.interrupt.recv() => {}
                _ = self.terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}
