//! A small PowerShell lexer for the tests of the generated scripts (`host collect`,
//! `host agent`): single-quoted literals with their values, line comments, and the code
//! around them, split as PowerShell's tokenizer splits them, as far as those scripts need.

use std::collections::BTreeSet;

/// Characters PowerShell's tokenizer takes as a single quote (`'` and U+2018–U+201B).
pub(crate) fn single_quote(c: char) -> bool {
    matches!(c, '\'' | '\u{2018}' | '\u{2019}' | '\u{201A}' | '\u{201B}')
}

/// Characters PowerShell's tokenizer takes as a double quote.
pub(crate) fn double_quote(c: char) -> bool {
    matches!(c, '"' | '\u{201C}' | '\u{201D}' | '\u{201E}')
}

/// A script split the way PowerShell's tokenizer splits it, as far as the collection
/// script needs: single-quoted literals (their values), line comments, and the code
/// around them.
#[derive(Default)]
pub(crate) struct Lexed {
    /// Each single-quoted literal's value (doubled quotes undone).
    pub literals: Vec<String>,
    /// Everything outside literals and comments, literals replaced by `''`.
    pub code: String,
    pub comments: String,
}

pub(crate) fn lex(script: &str) -> Lexed {
    let mut out = Lexed::default();
    let mut chars = script.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '#' {
            for c in chars.by_ref() {
                if c == '\n' {
                    out.code.push('\n');
                    break;
                }
                out.comments.push(c);
            }
        } else if c == '<' && chars.peek() == Some(&'#') {
            panic!("a block comment: the lexer does not follow it");
        } else if c == '@'
            && chars
                .peek()
                .is_some_and(|&q| single_quote(q) || double_quote(q))
        {
            panic!("a here-string: the lexer does not follow it");
        } else if single_quote(c) {
            let mut value = String::new();
            loop {
                match chars.next() {
                    None => panic!("a single-quoted literal never ends: {value:?}"),
                    Some(q) if single_quote(q) => {
                        // A quote doubled is one quote of the value; alone, the end.
                        match chars.peek() {
                            Some(&n) if single_quote(n) => {
                                value.push(n);
                                chars.next();
                            }
                            _ => break,
                        }
                    }
                    Some(x) => value.push(x),
                }
            }
            out.literals.push(value);
            out.code.push_str("''");
        } else if double_quote(c) {
            // Expandable strings: the body's have no `$(...)` (checked), so their end is
            // the next unescaped double quote.
            out.code.push('"');
            loop {
                match chars.next() {
                    None => panic!("a double-quoted string never ends"),
                    Some('`') => {
                        chars.next();
                    }
                    Some('$') if chars.peek() == Some(&'(') => {
                        panic!("a subexpression in a double-quoted string")
                    }
                    Some(q) if double_quote(q) => {
                        if chars.peek().is_some_and(|&n| double_quote(n)) {
                            chars.next();
                        } else {
                            break;
                        }
                    }
                    Some(_) => {}
                }
            }
            out.code.push('"');
        } else {
            out.code.push(c);
        }
    }
    out
}

/// Cmdlets (`Verb-Noun`) the code outside literals and comments calls.
pub(crate) fn cmdlets(code: &str) -> BTreeSet<String> {
    code.split(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
        .filter(|w| {
            let mut parts = w.split('-');
            let (Some(verb), Some(noun), None) = (parts.next(), parts.next(), parts.next()) else {
                return false;
            };
            let word = |p: &str| p.chars().next().is_some_and(|c| c.is_ascii_uppercase());
            word(verb) && word(noun)
        })
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_lexer_reads_literals_as_powershell_does() {
        let l = lex("Get-X -Name 'it''s' # a 'comment'\n$a = 'x\u{2019}\u{2019}y'; \"q`\"\"\n");
        assert_eq!(
            l.literals,
            vec!["it's".to_string(), "x\u{2019}y".to_string()]
        );
        assert_eq!(l.code, "Get-X -Name '' \n$a = ''; \"\"\n");
        assert_eq!(l.comments, " a 'comment'");
    }
}
