//! Plain-language notes: keyed messages in per-language catalogues, and the narrator that
//! decides which events deserve one.
//!
//! A catalogue is one TOML file under `locales/` (`key = "text with {name}"`). Adding a language
//! is adding a file and a line in [`CATALOGUES`]; every catalogue has the same keys, and each
//! key the same `{name}` placeholders, as the English one (checked by [`Catalogue::mismatches`]
//! in the tests).

pub mod narrate;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt;
use std::hash::{BuildHasherDefault, Hasher};
use std::sync::OnceLock;

use serde::de::{Deserialize, Deserializer, Visitor};

use crate::event::Note;

pub use narrate::narrate_syscall;

/// The catalogues compiled into socklab: (language code, TOML text). A static, not a const:
/// one copy of each text, which the templates in use borrow from.
pub static CATALOGUES: &[(&str, &str)] = &[
    ("en", include_str!("../../../locales/en.toml")),
    ("ko", include_str!("../../../locales/ko.toml")),
];

/// The language used when none is chosen or a key is missing.
pub const FALLBACK: &str = "en";

/// One language's messages.
#[derive(Debug, Clone)]
pub struct Catalogue {
    /// Language code (`en`).
    pub lang: String,
    /// Key to message template.
    pub messages: HashMap<String, String>,
}

impl Catalogue {
    /// Parses a catalogue file.
    pub fn parse(lang: &str, text: &str) -> Result<Catalogue, toml::de::Error> {
        let messages: BTreeMap<String, String> = toml::from_str(text)?;
        Ok(Catalogue {
            lang: lang.to_string(),
            messages: messages.into_iter().collect(),
        })
    }

    /// The compiled-in catalogue for `lang`, if there is one.
    pub fn builtin(lang: &str) -> Option<Catalogue> {
        CATALOGUES
            .iter()
            .find(|(l, _)| *l == lang)
            .map(|(l, text)| Catalogue::parse(l, text).expect("built-in catalogues parse"))
    }

    /// How this catalogue differs from `reference` (the English one): keys missing here,
    /// keys only here, and keys whose placeholder sets differ. Empty when they match.
    pub fn mismatches(&self, reference: &Catalogue) -> Vec<String> {
        let mut out = Vec::new();
        let mine: BTreeSet<&String> = self.messages.keys().collect();
        let theirs: BTreeSet<&String> = reference.messages.keys().collect();
        for k in theirs.difference(&mine) {
            out.push(format!("{}: missing {k}", self.lang));
        }
        for k in mine.difference(&theirs) {
            out.push(format!("{}: {k} is not in {}", self.lang, reference.lang));
        }
        for k in mine.intersection(&theirs) {
            let (a, b) = (
                placeholders(&self.messages[*k]),
                placeholders(&reference.messages[*k]),
            );
            if a != b {
                out.push(format!(
                    "{}: {k} has placeholders {a:?}, {} has {b:?}",
                    self.lang, reference.lang
                ));
            }
        }
        out
    }
}

/// The `{name}` placeholders of a template (names of letters, digits and `_`; other braces,
/// such as `SO_LINGER {1, 0}`, are text).
pub fn placeholders(template: &str) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    let mut rest = template;
    while let Some(start) = rest.find('{') {
        rest = &rest[start + 1..];
        if let Some(end) = rest.find('}') {
            let name = &rest[..end];
            if !name.is_empty() && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                out.insert(name.to_string());
            }
        }
    }
    out
}

/// The language codes socklab has a catalogue for.
pub fn languages() -> impl Iterator<Item = &'static str> {
    CATALOGUES.iter().map(|(l, _)| *l)
}

/// The language code a locale names, if socklab has a catalogue for it: `ko`, `ko_KR.UTF-8`
/// and `ko-KR` give `ko`; `C`, `POSIX` and unknown languages give `None`.
pub fn lang_of_locale(locale: &str) -> Option<&'static str> {
    let code = locale
        .split(['_', '-', '.', '@'])
        .next()?
        .to_ascii_lowercase();
    languages().find(|l| *l == code)
}

/// The language the environment asks for: SOCKLAB_LANG, else the first of LC_ALL,
/// LC_MESSAGES and LANG that is set (as setlocale(3) reads them), if socklab has that
/// language; else English. (The examples, which take no flags, read it too.)
pub fn lang_from_env() -> &'static str {
    ["SOCKLAB_LANG", "LC_ALL", "LC_MESSAGES", "LANG"]
        .iter()
        .filter_map(|var| std::env::var(var).ok())
        .find(|v| !v.is_empty())
        .and_then(|v| lang_of_locale(&v))
        .unwrap_or(FALLBACK)
}

/// The templates of one built-in catalogue, as the lab looks them up at run time.
///
/// Unlike [`Catalogue`], they borrow from the catalogue text compiled into socklab: read-only
/// pages of the executable cost a fork nothing, whereas every heap page they would fill is one
/// more page-table entry that each fork copies and each child's exit tears down.
#[derive(Debug)]
struct Templates {
    lang: &'static str,
    by_key: HashMap<Static, Static, BuildHasherDefault<Fnv>>,
}

impl Templates {
    fn builtin(lang: &str) -> Option<Templates> {
        let (lang, text) = CATALOGUES.iter().find(|(l, _)| *l == lang)?;
        let by_key = toml::from_str(text).expect("built-in catalogues parse");
        Some(Templates { lang, by_key })
    }

    fn get(&self, key: &str) -> Option<&'static str> {
        self.by_key.get(key).map(|t| t.0)
    }
}

/// A string of a built-in catalogue: borrowed from its text, or, for the few with escapes to
/// undo, unescaped once and kept for the life of the process (the catalogue in use is loaded
/// once, see [`ACTIVE`]).
#[derive(Debug, PartialEq, Eq, Hash)]
struct Static(&'static str);

impl std::borrow::Borrow<str> for Static {
    fn borrow(&self) -> &str {
        self.0
    }
}

impl<'de: 'static> Deserialize<'de> for Static {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Static, D::Error> {
        struct Text;
        impl<'de: 'static> Visitor<'de> for Text {
            type Value = Static;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }

            fn visit_borrowed_str<E>(self, s: &'de str) -> Result<Static, E> {
                Ok(Static(s))
            }

            fn visit_str<E>(self, s: &str) -> Result<Static, E> {
                Ok(Static(s.to_owned().leak()))
            }
        }
        d.deserialize_str(Text)
    }
}

/// FNV-1a, for the catalogue's keys (the lab's own: no flooding to fear). A few instructions
/// inlined into the lookup, where SipHash is code of its own that a fork child would fault in
/// to print its one line.
struct Fnv(u64);

impl Default for Fnv {
    fn default() -> Fnv {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
}

impl Hasher for Fnv {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x100_0000_01b3);
        }
    }
}

/// The templates in use and, when they are not English, the English ones for keys they lack.
static ACTIVE: OnceLock<(Templates, Option<Templates>)> = OnceLock::new();

/// Chooses the language for this process (first call wins). Unknown codes fall back to
/// English; returns the code in use.
pub fn set_lang(lang: &str) -> String {
    let (active, _) = ACTIVE.get_or_init(|| load(lang));
    active.lang.to_string()
}

fn load(lang: &str) -> (Templates, Option<Templates>) {
    let english = || Templates::builtin(FALLBACK).expect("English catalogue exists");
    match Templates::builtin(lang) {
        Some(active) if active.lang != FALLBACK => (active, Some(english())),
        Some(active) => (active, None),
        None => (english(), None),
    }
}

/// The template for `key`: the active catalogue's, else English's.
fn template(key: &str) -> Option<&'static str> {
    let (active, fallback) = ACTIVE.get_or_init(|| load(FALLBACK));
    active.get(key).or_else(|| fallback.as_ref()?.get(key))
}

/// The language in use (`en` until [`set_lang`] chose another).
pub fn lang() -> &'static str {
    let (active, _) = ACTIVE.get_or_init(|| load(FALLBACK));
    active.lang
}

/// True when the catalogue has a message for `key`.
pub fn has(key: &str) -> bool {
    template(key).is_some()
}

/// The message for `key` with `{name}` placeholders filled in; the key itself if unknown.
pub fn text(key: &str, args: &[(&str, String)]) -> String {
    let mut out = String::new();
    // Writing to a String fails only if a value's Display does.
    let _ = write_text(&mut out, key, args);
    out
}

/// Writes the message for `key` to `out`, each `{name}` replaced by its value as it goes
/// (the key itself if unknown). Allocates nothing itself, so a server's message per connection
/// can be formatted on the stack ([`crate::programs::output::say_with`]).
pub fn write_text<V: fmt::Display>(
    out: &mut impl fmt::Write,
    key: &str,
    args: &[(&str, V)],
) -> fmt::Result {
    fill(out, template(key).unwrap_or(key), args)
}

/// The message for `key` cut at its placeholder `{gap}`: the template before it and the one
/// after it (`None` when the message has no such placeholder, or `key` is unknown).
pub(crate) fn split_template(key: &str, gap: &str) -> Option<(&'static str, &'static str)> {
    let t = template(key)?;
    let mark = t.match_indices('{').find(|(at, _)| {
        t[at + 1..]
            .strip_prefix(gap)
            .is_some_and(|rest| rest.starts_with('}'))
    })?;
    let at = mark.0;
    Some((&t[..at], &t[at + gap.len() + 2..]))
}

/// Copies `template` to `out` with each `{name}` of `args` replaced by its value; other
/// braces are text. Values are not scanned again, so a value may contain braces.
pub(crate) fn fill<V: fmt::Display>(
    out: &mut impl fmt::Write,
    template: &str,
    args: &[(&str, V)],
) -> fmt::Result {
    let mut rest = template;
    while let Some(open) = rest.find('{') {
        out.write_str(&rest[..open])?;
        let after = &rest[open + 1..];
        let arg = after.find('}').and_then(|close| {
            let name = &after[..close];
            let (_, value) = args.iter().find(|(n, _)| *n == name)?;
            Some((value, close))
        });
        match arg {
            Some((value, close)) => {
                write!(out, "{value}")?;
                rest = &after[close + 1..];
            }
            None => {
                out.write_char('{')?;
                rest = after;
            }
        }
    }
    out.write_str(rest)
}

/// Builds a note for `key` in the language of the run.
pub fn note(key: &str, args: &[(&str, String)]) -> Note {
    Note {
        key: key.to_string(),
        args: args
            .iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect(),
        text: text(key, args),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_catalogue_parses() {
        for (lang, _) in CATALOGUES {
            let c = Catalogue::builtin(lang).unwrap();
            assert!(!c.messages.is_empty());
        }
    }

    #[test]
    fn every_catalogue_has_the_english_keys_and_placeholders() {
        let en = Catalogue::builtin("en").unwrap();
        for (lang, _) in CATALOGUES {
            let c = Catalogue::builtin(lang).unwrap();
            let bad = c.mismatches(&en);
            assert!(bad.is_empty(), "{}", bad.join("\n"));
        }
    }

    #[test]
    fn placeholders_are_names_in_braces() {
        let p = placeholders("fd {fd} of {peer}; SO_LINGER {1, 0} {l_onoff=1} {}");
        assert_eq!(p.into_iter().collect::<Vec<_>>(), ["fd", "peer"]);
    }

    #[test]
    fn locales_name_languages() {
        assert_eq!(lang_of_locale("ko_KR.UTF-8"), Some("ko"));
        assert_eq!(lang_of_locale("ko"), Some("ko"));
        assert_eq!(lang_of_locale("KO-kr"), Some("ko"));
        assert_eq!(lang_of_locale("en_US.UTF-8"), Some("en"));
        assert_eq!(lang_of_locale("C.UTF-8"), None);
        assert_eq!(lang_of_locale("POSIX"), None);
        assert_eq!(lang_of_locale("fr_FR.UTF-8"), None);
    }

    #[test]
    fn placeholders_are_filled() {
        let n = note("read.eof", &[]);
        assert!(n.text.contains("read returned 0"));
        let n = note(
            "accept4.new_fd",
            &[
                ("fd", "4".into()),
                ("lfd", "3".into()),
                ("peer", "1.2.3.4:5".into()),
            ],
        );
        assert!(n.text.contains("NEW fd 4"), "{}", n.text);
        assert!(!n.text.contains('{'), "{}", n.text);
    }

    #[test]
    fn templates_match_the_catalogues_and_borrow_their_text() {
        for (lang, text) in CATALOGUES {
            let owned = Catalogue::builtin(lang).unwrap();
            let t = Templates::builtin(lang).unwrap();
            assert_eq!(t.by_key.len(), owned.messages.len(), "{lang}");
            let in_text = text.as_bytes().as_ptr_range();
            let mut borrowed = 0;
            for (key, message) in &owned.messages {
                let got = t.get(key).unwrap_or_else(|| panic!("{lang}: no {key}"));
                assert_eq!(got, message, "{lang}: {key}");
                borrowed += usize::from(in_text.contains(&got.as_ptr()));
            }
            // Only the few with escapes (\") are copied.
            assert!(
                borrowed + 10 >= owned.messages.len(),
                "{lang}: {borrowed} borrowed"
            );
        }
    }

    #[test]
    fn a_template_splits_at_its_placeholder_only() {
        let (head, tail) = split_template("app.echoed", "n").unwrap();
        assert!(
            head.ends_with("after ") && tail.starts_with(" bytes"),
            "{head}|{tail}"
        );
        assert!(head.contains("{peer}"));
        assert_eq!(split_template("app.echoed", "pee"), None);
        assert_eq!(split_template("no.such.key", "n"), None);
    }

    #[test]
    fn fill_keeps_other_braces_and_does_not_rescan_values() {
        let mut out = String::new();
        let args: [(&str, &dyn fmt::Display); 2] = [("a", &"{b}"), ("b", &7)];
        fill(&mut out, "{a} {b} {c} SO_LINGER {1, 0} {", &args).unwrap();
        assert_eq!(out, "{b} 7 {c} SO_LINGER {1, 0} {");
    }

    #[test]
    fn every_placeholder_in_english_is_documented_by_narrator_or_apps() {
        // A template must not contain a stray brace pair other than {name} placeholders.
        let c = Catalogue::builtin("en").unwrap();
        for (k, v) in &c.messages {
            assert_eq!(
                v.matches('{').count(),
                v.matches('}').count(),
                "unbalanced braces in {k}"
            );
        }
    }
}
