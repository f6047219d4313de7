//! A one-line spinner on stderr saying what runs (the model, or `exec: make test`), shown only
//! when stderr is a terminal.

use std::io::{IsTerminal, Write};
use std::sync::{Arc, Mutex};

pub struct Spinner {
    label: Arc<Mutex<Option<String>>>,
    task: Option<tokio::task::JoinHandle<()>>,
}

const FRAMES: &[&str] = &["⠋", "⠙", "⠹", "⠸", "⠼", "⠴", "⠦", "⠧", "⠇", "⠏"];

impl Spinner {
    pub fn start(enabled: bool) -> Spinner {
        let label = Arc::new(Mutex::new(None::<String>));
        let task = (enabled && std::io::stderr().is_terminal()).then(|| {
            let label = label.clone();
            tokio::spawn(async move {
                let mut i = 0usize;
                loop {
                    let text = label.lock().ok().and_then(|l| l.clone());
                    if let Some(t) = text {
                        let mut e = std::io::stderr();
                        let _ = write!(e, "\r\x1b[2K{} {t}…", FRAMES[i % FRAMES.len()]);
                        let _ = e.flush();
                    }
                    i += 1;
                    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                }
            })
        });
        Spinner { label, task }
    }

    /// Stop and clear the line.
    pub fn stop(&mut self) {
        if let Some(t) = self.task.take() {
            t.abort();
            let mut e = std::io::stderr();
            let _ = write!(e, "\r\x1b[2K");
            let _ = e.flush();
        }
    }
}

impl crate::agent::Progress for Spinner {
    fn update(&self, what: &str) {
        if let Ok(mut l) = self.label.lock() {
            *l = Some(what.to_string());
        }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop();
    }
}
