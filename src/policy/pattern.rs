//! Glob matching (`*` = any sequence, `?` = exactly one character; nothing else is special)
//! and ARN matching (per segment, IAM.md §2.1, §2.3).
//!
//! The matcher never backtracks across stars: a pattern is split at its stars into
//! fixed-length segments; the first is anchored at the start, the last at the end and the
//! middle ones are found greedily left to right (leftmost match is always safe because a
//! star may absorb anything in between). `?`-free segments are searched with `str::find`
//! (two-way, linear); segments containing `?` are probed at each character boundary.
//! Literal `*`/`?` (from `${*}`, `${?}` or a substituted variable) are represented as
//! literal text, so they are never wildcards.

/// One token of a pattern before compilation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Tok {
    /// Literal text (may contain `*` or `?` as plain characters).
    Lit(String),
    /// `?`
    One,
    /// `*`
    Star,
}

/// Tokenize policy text where `*` and `?` are wildcards.
pub(crate) fn glob_toks(text: &str) -> Vec<Tok> {
    let mut out = Vec::new();
    let mut lit = String::new();
    for c in text.chars() {
        match c {
            '*' | '?' => {
                if !lit.is_empty() {
                    out.push(Tok::Lit(std::mem::take(&mut lit)));
                }
                out.push(if c == '*' { Tok::Star } else { Tok::One });
            }
            _ => lit.push(c),
        }
    }
    if !lit.is_empty() {
        out.push(Tok::Lit(lit));
    }
    out
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum SegTok {
    Lit(Box<str>),
    One,
}

/// A star-free run of tokens: fixed length in characters.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Seg {
    toks: Vec<SegTok>,
    /// Length in characters.
    chars: usize,
    /// `Some(text)` when the segment is one literal (no `?`).
    literal: Option<Box<str>>,
}

impl Seg {
    fn push(&mut self, t: SegTok) {
        match &t {
            SegTok::Lit(l) => self.chars += l.chars().count(),
            SegTok::One => self.chars += 1,
        }
        self.toks.push(t);
    }

    fn finish(mut self) -> Self {
        self.literal = match self.toks.as_slice() {
            [] => Some("".into()),
            [SegTok::Lit(l)] => Some(l.clone()),
            _ => None,
        };
        self
    }

    /// Match this segment at byte offset `i` of `s`; returns the end offset.
    fn match_at(&self, s: &str, mut i: usize) -> Option<usize> {
        for t in &self.toks {
            let rest = s.get(i..)?;
            match t {
                SegTok::Lit(l) => {
                    if !rest.starts_with(&**l) {
                        return None;
                    }
                    i += l.len();
                }
                SegTok::One => i += rest.chars().next()?.len_utf8(),
            }
        }
        Some(i)
    }

    /// Leftmost match starting at or after `from` that ends at or before `limit`.
    fn find(&self, s: &str, from: usize, limit: usize) -> Option<usize> {
        let window = s.get(from..limit)?;
        if let Some(lit) = &self.literal {
            return window.find(&**lit).map(|p| from + p + lit.len());
        }
        for (off, _) in window.char_indices() {
            if let Some(end) = self.match_at(s, from + off) {
                if end <= limit {
                    return Some(end);
                }
            }
        }
        None
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Repr {
    /// `*`
    Any,
    /// No wildcard at all.
    Exact(Box<str>),
    /// `literal*`
    Prefix(Box<str>),
    /// Star-free pattern with `?`.
    Fixed(Seg),
    /// At least one star: `first * middle… * last`.
    Starred {
        first: Seg,
        middle: Vec<Seg>,
        last: Seg,
    },
}

/// A compiled glob pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pattern {
    repr: Repr,
}

impl Pattern {
    /// Compile policy text where `*` and `?` are wildcards.
    pub fn glob(text: &str) -> Self {
        Self::from_toks(glob_toks(text))
    }

    /// A pattern matching exactly `text`.
    pub fn literal(text: &str) -> Self {
        Self {
            repr: Repr::Exact(text.into()),
        }
    }

    pub(crate) fn from_toks(toks: Vec<Tok>) -> Self {
        let mut segs: Vec<Seg> = vec![Seg::default()];
        let mut pending = String::new();
        for t in toks {
            match t {
                Tok::Lit(l) => pending.push_str(&l),
                Tok::One | Tok::Star => {
                    if let Some(cur) = segs.last_mut() {
                        if !pending.is_empty() {
                            cur.push(SegTok::Lit(std::mem::take(&mut pending).into()));
                        }
                        if t == Tok::One {
                            cur.push(SegTok::One);
                        }
                    }
                    if t == Tok::Star {
                        segs.push(Seg::default());
                    }
                }
            }
        }
        if let Some(cur) = segs.last_mut() {
            if !pending.is_empty() {
                cur.push(SegTok::Lit(pending.into()));
            }
        }
        let mut segs: Vec<Seg> = segs.into_iter().map(Seg::finish).collect();
        let repr = if segs.len() == 1 {
            let seg = segs.pop().unwrap_or_default();
            match seg.literal.clone() {
                Some(l) => Repr::Exact(l),
                None => Repr::Fixed(seg),
            }
        } else {
            let last = segs.pop().unwrap_or_default();
            let mut it = segs.into_iter();
            let first = it.next().unwrap_or_default();
            // consecutive stars produce empty middle segments: drop them
            let middle: Vec<Seg> = it.filter(|s| !s.toks.is_empty()).collect();
            match (&first.literal, middle.is_empty(), last.toks.is_empty()) {
                (Some(f), true, true) if f.is_empty() => Repr::Any,
                (Some(f), true, true) => Repr::Prefix(f.clone()),
                _ => Repr::Starred {
                    first,
                    middle,
                    last,
                },
            }
        };
        Self { repr }
    }

    /// Whether the pattern is exactly `*`.
    pub fn is_any(&self) -> bool {
        matches!(self.repr, Repr::Any)
    }

    /// Whether the pattern contains no wildcard.
    pub fn is_literal(&self) -> bool {
        matches!(self.repr, Repr::Exact(_))
    }

    /// The literal text before the first wildcard.
    pub fn literal_prefix(&self) -> &str {
        let seg = match &self.repr {
            Repr::Any => return "",
            Repr::Exact(l) | Repr::Prefix(l) => return l,
            Repr::Fixed(s) => s,
            Repr::Starred { first, .. } => first,
        };
        match seg.toks.first() {
            Some(SegTok::Lit(l)) => l,
            _ => "",
        }
    }

    /// Whether `s` matches the whole pattern.
    pub fn matches(&self, s: &str) -> bool {
        match &self.repr {
            Repr::Any => true,
            Repr::Exact(l) => **l == *s,
            Repr::Prefix(l) => s.starts_with(&**l),
            Repr::Fixed(seg) => seg.match_at(s, 0) == Some(s.len()),
            Repr::Starred {
                first,
                middle,
                last,
            } => {
                let Some(mut pos) = first.match_at(s, 0) else {
                    return false;
                };
                let last_start = if last.chars == 0 {
                    s.len()
                } else {
                    match s.char_indices().rev().nth(last.chars - 1) {
                        Some((i, _)) => i,
                        None => return false,
                    }
                };
                if last_start < pos {
                    return false;
                }
                for m in middle {
                    match m.find(s, pos, last_start) {
                        Some(end) => pos = end,
                        None => return false,
                    }
                }
                last.match_at(s, last_start) == Some(s.len())
            }
        }
    }
}

/// Split an ARN into its six parts (`arn`, partition, service, region, account, resource).
pub(crate) fn split_arn(s: &str) -> Option<[&str; 6]> {
    let mut it = s.splitn(6, ':');
    let parts = [
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
        it.next()?,
    ];
    Some(parts)
}

/// An ARN pattern matched segment by segment (Resource elements and `Arn*` operators).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ArnPattern {
    /// `*`: matches everything, including the `*` resource of list-type actions.
    Any,
    /// The six segment patterns; the last may consume `:` and `/`. The string is the
    /// literal text every match starts with (a quick reject).
    Segments(Box<([Pattern; 6], Box<str>)>),
    /// A short pattern without a trailing `*`: matches nothing.
    Never,
}

impl ArnPattern {
    /// Compile from tokens (policy text, or a resolved template).
    pub(crate) fn from_toks(toks: Vec<Tok>) -> Self {
        if matches!(toks.as_slice(), [Tok::Star]) {
            return Self::Any;
        }
        let mut parts: Vec<Vec<Tok>> = vec![Vec::new()];
        for t in toks {
            match t {
                Tok::Lit(l) if parts.len() < 6 && l.contains(':') => {
                    let mut pieces = l.split(':').peekable();
                    while let Some(p) = pieces.next() {
                        if let Some(cur) = parts.last_mut() {
                            if !p.is_empty() {
                                cur.push(Tok::Lit(p.to_owned()));
                            }
                        }
                        if pieces.peek().is_some() {
                            if parts.len() < 6 {
                                parts.push(Vec::new());
                            } else if let Some(cur) = parts.last_mut() {
                                cur.push(Tok::Lit(":".to_owned()));
                            }
                        }
                    }
                }
                other => {
                    if let Some(cur) = parts.last_mut() {
                        cur.push(other);
                    }
                }
            }
        }
        if parts.len() < 6 {
            let trailing_star = matches!(parts.last().and_then(|p| p.last()), Some(Tok::Star));
            if !trailing_star {
                return Self::Never;
            }
            while parts.len() < 6 {
                parts.push(vec![Tok::Star]);
            }
        }
        let mut it = parts.into_iter().map(Pattern::from_toks);
        let seg = |p: Option<Pattern>| p.unwrap_or_else(|| Pattern::literal(""));
        let arr = [
            seg(it.next()),
            seg(it.next()),
            seg(it.next()),
            seg(it.next()),
            seg(it.next()),
            seg(it.next()),
        ];
        let prefix = literal_prefix_of(&arr);
        Self::Segments(Box::new((arr, prefix.into())))
    }

    /// Compile policy text.
    pub fn glob(text: &str) -> Self {
        Self::from_toks(glob_toks(text))
    }

    /// Match a candidate that has already been split (`None` = not an ARN, e.g. `*`).
    pub(crate) fn matches_parts(&self, parts: Option<&[&str; 6]>) -> bool {
        match self {
            Self::Any => true,
            Self::Never => false,
            Self::Segments(b) => match parts {
                None => false,
                Some(parts) => b.0.iter().zip(parts.iter()).all(|(p, s)| p.matches(s)),
            },
        }
    }

    /// Match a candidate given both whole and split (the whole string allows a quick reject).
    pub(crate) fn matches_full(&self, s: &str, parts: Option<&[&str; 6]>) -> bool {
        match self {
            Self::Segments(b) if !s.starts_with(&*b.1) => false,
            _ => self.matches_parts(parts),
        }
    }

    /// Match a candidate string.
    pub fn matches(&self, s: &str) -> bool {
        match self {
            Self::Any => true,
            _ => self.matches_parts(split_arn(s).as_ref()),
        }
    }

    /// The literal text every matching ARN starts with (for indexing).
    pub(crate) fn literal_prefix(&self) -> Option<String> {
        match self {
            Self::Segments(b) => Some(b.1.to_string()),
            _ => None,
        }
    }
}

fn literal_prefix_of(segs: &[Pattern; 6]) -> String {
    let mut out = String::new();
    for (i, p) in segs.iter().enumerate() {
        if i > 0 {
            out.push(':');
        }
        out.push_str(p.literal_prefix());
        if !p.is_literal() {
            break;
        }
    }
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Reference matcher: plain recursion over characters (exponential, tests only).
    pub(crate) fn naive(p: &[char], s: &[char]) -> bool {
        match p.split_first() {
            None => s.is_empty(),
            Some(('*', rest)) => (0..=s.len()).any(|i| naive(rest, &s[i..])),
            Some(('?', rest)) => !s.is_empty() && naive(rest, &s[1..]),
            Some((c, rest)) => s.first() == Some(c) && naive(rest, &s[1..]),
        }
    }

    fn m(p: &str, s: &str) -> bool {
        let got = Pattern::glob(p).matches(s);
        let pc: Vec<char> = p.chars().collect();
        let sc: Vec<char> = s.chars().collect();
        assert_eq!(got, naive(&pc, &sc), "pattern `{p}` vs `{s}`");
        got
    }

    #[test]
    fn glob_basics() {
        assert!(m("*", ""));
        assert!(m("*", "abc"));
        assert!(m("a*", "abc"));
        assert!(!m("a*", "bac"));
        assert!(m("*c", "abc"));
        assert!(m("a*c", "ac"));
        assert!(m("a*b*c", "aXbYc"));
        assert!(!m("a*b*c", "aXcYb"));
        assert!(m("a?c", "abc"));
        assert!(!m("a?c", "ac"));
        assert!(m("??", "é€"));
        assert!(!m("???", "é€"));
        assert!(m("a.b", "a.b"));
        assert!(!m("a.b", "axb"));
        assert!(m("*?", "x"));
        assert!(!m("*?", ""));
        assert!(m("a**b", "ab"));
        assert!(m("*a*a*a", "aaaa"));
        assert!(!m("*a*a*a*b", "aaaaaaa"));
        assert!(m("db-??????", "db-a1B2c3"));
        assert!(!m("db-??????", "db-a1B2c"));
        assert!(m("[a]", "[a]"));
        assert!(m("*?*?", "ab"));
    }

    #[test]
    fn literal_star_from_toks() {
        let p = Pattern::from_toks(vec![Tok::Lit("a*".into())]);
        assert!(p.matches("a*"));
        assert!(!p.matches("ab"));
    }

    #[test]
    fn arn_segments() {
        let p = ArnPattern::glob("arn:aws:someservice:*:111122223333:finance/*");
        assert!(!p.matches(
            "arn:aws:someservice:us-east-2:999999999999:store/abc:111122223333:finance/document.txt"
        ));
        assert!(p.matches("arn:aws:someservice:us-east-2:111122223333:finance/a:b/c"));
        let short = ArnPattern::glob("arn:aws:secretsmanager:*");
        assert!(short.matches("arn:aws:secretsmanager:us-east-1:1:secret:x-abcdef"));
        assert!(!short.matches("arn:aws:s3:::b"));
        assert!(!short.matches("*"));
        assert_eq!(
            ArnPattern::glob("arn:aws:secretsmanager"),
            ArnPattern::Never
        );
        assert!(ArnPattern::glob("*").matches("*"));
        let exact = ArnPattern::glob("arn:aws:secretsmanager:us-east-1:1:secret:prod/db");
        assert!(!exact.matches("arn:aws:secretsmanager:us-east-1:1:secret:prod/db-a1B2c3"));
        assert_eq!(
            exact.literal_prefix().as_deref(),
            Some("arn:aws:secretsmanager:us-east-1:1:secret:prod/db")
        );
        assert_eq!(
            ArnPattern::glob("arn:aws:secretsmanager:*:1:secret:x")
                .literal_prefix()
                .as_deref(),
            Some("arn:aws:secretsmanager:")
        );
    }
}
