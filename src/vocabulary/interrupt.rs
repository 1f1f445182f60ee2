//! Ctrl-C, one way for every wait: once [`listen`] has run, SIGINT no longer
//! kills the process but is remembered, and every wait loop (tracking, the
//! pending-delete limit, `verify --physical --wait`, a distributed DDL
//! statement waiting for its hosts) ends through [`requested`] or
//! [`pause`], so that the command still reports, journals and audits what
//! it did (exit 130). A Ctrl-C pressed between two waits is not lost: the
//! next wait ends at once.

use std::future::Future;
use std::sync::OnceLock;
use std::time::Duration;

use tokio::sync::watch;

/// Set once SIGINT arrived (never reset: the command is winding down).
static PRESSED: OnceLock<watch::Sender<bool>> = OnceLock::new();

/// Take over SIGINT from here on (idempotent). A command calls it where a
/// Ctrl-C must no longer kill it outright: when a request has a journal, or
/// before a wait. Needs the tokio runtime; without a signal driver (never
/// the case in the binary) Ctrl-C keeps its default.
pub fn listen() {
    PRESSED.get_or_init(|| {
        let (sender, _) = watch::channel(false);
        if let Some(mut arrivals) = arrivals() {
            let notify = sender.clone();
            tokio::spawn(async move {
                if arrivals.recv().await.is_some() {
                    notify.send_replace(true);
                }
                // Later presses are absorbed by the handler still installed.
                while arrivals.recv().await.is_some() {}
            });
        }
        sender
    });
}

/// SIGINT as a stream, registered now (not at the first poll, so that a
/// Ctrl-C right after [`listen`] is already caught).
#[cfg(unix)]
fn arrivals() -> Option<tokio::signal::unix::Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()).ok()
}

#[cfg(not(unix))]
fn arrivals() -> Option<tokio::sync::mpsc::Receiver<()>> {
    let (sender, receiver) = tokio::sync::mpsc::channel(1);
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            if sender.send(()).await.is_err() {
                break;
            }
        }
    });
    Some(receiver)
}

/// Whether Ctrl-C was pressed since [`listen`].
pub fn was_requested() -> bool {
    PRESSED.get().is_some_and(|pressed| *pressed.borrow())
}

/// Resolves once Ctrl-C was pressed (at once if it was already); listens
/// first if nothing did yet.
pub async fn requested() {
    listen();
    let Some(pressed) = PRESSED.get() else {
        return std::future::pending().await;
    };
    let mut seen = pressed.subscribe();
    if seen.wait_for(|pressed| *pressed).await.is_err() {
        // The sender lives in a static: never closed.
        std::future::pending::<()>().await;
    }
}

/// Sleep `wait`; false when Ctrl-C ended it (or had been pressed before).
pub async fn pause(wait: Duration) -> bool {
    unless_requested(tokio::time::sleep(wait)).await.is_some()
}

/// Run `work` unless Ctrl-C comes first (`None`: it was dropped unfinished).
pub async fn unless_requested<F: Future>(work: F) -> Option<F::Output> {
    if was_requested() {
        return None;
    }
    tokio::select! {
        output = work => Some(output),
        () = requested() => None,
    }
}
