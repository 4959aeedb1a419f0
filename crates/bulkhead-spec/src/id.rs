//! Container ids become directory names under the state root, so they are
//! restricted to characters that cannot escape it or confuse a shell.

use thiserror::Error;

/// Longer ids would push state paths past PATH_MAX-ish limits.
pub const MAX_LEN: usize = 1024;

#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum IdError {
    #[error("invalid container id: empty")]
    Empty,
    #[error("invalid container id: {len} bytes long, the limit is {MAX_LEN}")]
    TooLong { len: usize },
    #[error("invalid container id {id:?}: reserved name")]
    Reserved { id: String },
    #[error(
        "invalid container id {id:?}: contains {ch:?}, only letters, digits, '_', '+', '-' and '.' are allowed"
    )]
    BadChar { id: String, ch: char },
}

pub fn validate(id: &str) -> Result<(), IdError> {
    if id.is_empty() {
        return Err(IdError::Empty);
    }
    if id.len() > MAX_LEN {
        return Err(IdError::TooLong { len: id.len() });
    }
    if let Some(ch) = id
        .chars()
        .find(|&c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '+' | '-' | '.')))
    {
        return Err(IdError::BadChar {
            id: id.to_owned(),
            ch,
        });
    }
    // "." and ".." pass the character check but name the state root itself
    // or its parent.
    if id == "." || id == ".." {
        return Err(IdError::Reserved { id: id.to_owned() });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_ordinary_ids() {
        for id in [
            "a",
            "ctr-1",
            "my_container.v2",
            "A+B",
            "...",
            ".hidden",
            "..x",
            "0",
            "4f0e7c2b9a1d",
        ] {
            assert_eq!(validate(id), Ok(()), "{id}");
        }
        assert_eq!(validate(&"x".repeat(MAX_LEN)), Ok(()));
    }

    #[test]
    fn rejects_empty() {
        let err = validate("").unwrap_err();
        assert_eq!(err, IdError::Empty);
        assert!(err.to_string().contains("invalid container id"));
        assert!(err.to_string().contains("empty"));
    }

    #[test]
    fn rejects_too_long() {
        let err = validate(&"x".repeat(MAX_LEN + 1)).unwrap_err();
        assert_eq!(err, IdError::TooLong { len: MAX_LEN + 1 });
        assert!(err.to_string().starts_with("invalid container id"));
        assert!(err.to_string().contains("1025 bytes"));
    }

    #[test]
    fn rejects_dot_names() {
        for id in [".", ".."] {
            let err = validate(id).unwrap_err();
            assert!(matches!(err, IdError::Reserved { .. }), "{id}");
            assert!(err.to_string().contains("invalid container id"));
            assert!(err.to_string().contains("reserved"));
        }
    }

    #[test]
    fn rejects_bad_characters() {
        let err = validate("a/b").unwrap_err();
        assert_eq!(
            err,
            IdError::BadChar {
                id: "a/b".into(),
                ch: '/'
            }
        );
        let msg = err.to_string();
        assert!(
            msg.starts_with("invalid container id \"a/b\": contains '/'"),
            "{msg}"
        );

        for id in [
            "../x", "a b", "a\0b", "a\nb", "é", "a:b", "a\\b", "$x", "a*", "~", "a@b", "Ω",
        ] {
            assert!(
                matches!(validate(id), Err(IdError::BadChar { .. })),
                "{id:?}"
            );
        }
    }

    #[test]
    fn control_characters_are_escaped_in_message() {
        let msg = validate("a\nb").unwrap_err().to_string();
        assert!(!msg.contains('\n'), "{msg}");
    }
}
