//! Query-string decoding (`application/x-www-form-urlencoded`).

/// Splits `a=1&b=x+y` into decoded pairs, in order. A key without `=` gets an
/// empty value; empty pieces (`a=1&&b=2`) are skipped.
pub fn parse(query: &str) -> Vec<(String, String)> {
    query
        .split('&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (k, v) = piece.split_once('=').unwrap_or((piece, ""));
            (decode(k), decode(v))
        })
        .collect()
}

/// Decodes `%XX` escapes and `+` as space. A `%` not followed by two hex
/// digits is kept as it is; bytes that are not UTF-8 become U+FFFD.
pub fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() => match (hex(bytes[i + 1]), hex(bytes[i + 2])) {
                (Some(hi), Some(lo)) => {
                    out.push(hi * 16 + lo);
                    i += 2;
                }
                _ => out.push(b'%'),
            },
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex(b: u8) -> Option<u8> {
    (b as char).to_digit(16).map(|d| d as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes() {
        assert_eq!(decode("hello+world"), "hello world");
        assert_eq!(decode("a%20b%2Bc%3d"), "a b+c=");
        assert_eq!(decode("caf%C3%A9"), "café");
        assert_eq!(decode("100%"), "100%");
        assert_eq!(decode("%zz%4"), "%zz%4");
        assert_eq!(decode("%41"), "A");
        assert_eq!(decode("%ff"), "\u{fffd}");
    }

    #[test]
    fn splits() {
        assert_eq!(
            parse("name=x&value=1.5&&flag&line=a+b%26c"),
            vec![
                ("name".to_string(), "x".to_string()),
                ("value".to_string(), "1.5".to_string()),
                ("flag".to_string(), String::new()),
                ("line".to_string(), "a b&c".to_string()),
            ]
        );
        assert!(parse("").is_empty());
    }
}
