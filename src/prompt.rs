//! Asking the user at the terminal: one question, and only `yes` is consent.

use std::io::{BufRead as _, Write as _};

/// Prints `question` on stderr and reads one line of stdin: true only for `yes`.
pub fn ask(question: &str) -> std::io::Result<bool> {
    say_raw!("{question}");
    std::io::stderr().flush()?;
    let mut answer = String::new();
    std::io::stdin().lock().read_line(&mut answer)?;
    Ok(answer.trim() == "yes")
}
