//! Cutting untrusted text down to a bound before it is echoed (in an error,
//! an audit event or a log line): what a caller sent must never decide how
//! many bytes the server writes or answers.

use std::borrow::Cow;

/// The longest marker [`clip`] appends (`…(+18446744073709551615 bytes)`).
const MARKER_MAX: usize = 32;

/// `text` if it is at most `max` bytes; otherwise its longest prefix that
/// ends on a character boundary and leaves room for a marker saying how many
/// bytes were cut, so the result is never longer than `max` bytes (for a
/// `max` of at least 32; a smaller one gets the bare prefix).
pub fn clip(text: &str, max: usize) -> Cow<'_, str> {
    if text.len() <= max {
        return Cow::Borrowed(text);
    }
    if max < MARKER_MAX {
        return Cow::Borrowed(&text[..floor_boundary(text, max)]);
    }
    let keep = floor_boundary(text, max - MARKER_MAX);
    Cow::Owned(format!("{}…(+{} bytes)", &text[..keep], text.len() - keep))
}

/// [`clip`] into an owned string, reusing `text` when it already fits.
pub fn clip_owned(text: String, max: usize) -> String {
    if text.len() <= max {
        text
    } else {
        clip(&text, max).into_owned()
    }
}

/// The largest index at most `index` that is a character boundary of `text`.
fn floor_boundary(text: &str, index: usize) -> usize {
    let mut index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_text_is_untouched_and_long_text_fits_its_bound() {
        assert!(matches!(
            clip("tenants/acme", 256),
            Cow::Borrowed("tenants/acme")
        ));
        let long = "é".repeat(100_000);
        for max in [0, 1, 31, 32, 33, 64, 255, 256, 1024] {
            let clipped = clip(&long, max);
            assert!(clipped.len() <= max, "{max}: {}", clipped.len());
            if max >= MARKER_MAX {
                assert!(clipped.ends_with(" bytes)"), "{clipped}");
                assert!(clipped.starts_with('é') || max < 34, "{clipped}");
            }
        }
        let clipped = clip(&long, 64);
        let kept = clipped.split('…').next().unwrap_or_default().len();
        assert!(clipped.contains(&format!("(+{} bytes)", long.len() - kept)));
        assert_eq!(clip_owned("abc".into(), 3), "abc");
        assert!(clip_owned("x".repeat(100), 40).len() <= 40);
    }
}
