//! The one line an error prints: the problem named once.
//!
//! Library errors carry their cause in their own message (so a library user who prints one
//! sees all of it), and the CLI adds context (a file name) around them. Printed link by
//! link, the same words would come twice: `a.vhdx: I/O error while opening a.vhdx: No such
//! file (os error 2): No such file (os error 2)`. A link is left out when an earlier link
//! already says it (a cause repeated) or a later one does (a context named again deeper).

/// The error and its causes as one line, each piece of text once.
pub fn error_text(e: &anyhow::Error) -> String {
    let links: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    let mut kept: Vec<&str> = Vec::new();
    for (i, link) in links.iter().enumerate() {
        let link = link.trim();
        let said_before = kept.iter().any(|k| k.contains(link));
        let said_later = links[i + 1..].iter().any(|l| l.contains(link));
        if !link.is_empty() && !said_before && !said_later {
            kept.push(link);
        }
    }
    kept.join(": ")
}

#[cfg(test)]
mod tests {
    use super::error_text;
    use anyhow::Context;
    use std::io;

    #[derive(Debug, thiserror::Error)]
    #[error("I/O error while opening {path}: {source}")]
    struct OpenError {
        path: String,
        #[source]
        source: io::Error,
    }

    fn not_found() -> io::Error {
        io::Error::new(
            io::ErrorKind::NotFound,
            "No such file or directory (os error 2)",
        )
    }

    #[test]
    fn a_cause_in_its_error_message_and_a_context_named_deeper_print_once() {
        let e = Err::<(), _>(OpenError {
            path: "a.vhdx".into(),
            source: not_found(),
        })
        .context("a.vhdx")
        .unwrap_err();
        assert_eq!(
            error_text(&e),
            "I/O error while opening a.vhdx: No such file or directory (os error 2)"
        );
    }

    #[test]
    fn a_context_that_adds_words_is_kept() {
        let e = Err::<(), _>(not_found())
            .context("reading scenarios/x.toml")
            .unwrap_err();
        assert_eq!(
            error_text(&e),
            "reading scenarios/x.toml: No such file or directory (os error 2)"
        );
    }
}
