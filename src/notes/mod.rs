//! Plain-language notes: keyed messages in per-language catalogues, and the narrator that
//! decides which events deserve one.
//!
//! A catalogue is one TOML file under `locales/` (`key = "text with {name}"`). Adding a language
//! is adding a file and a line in [`CATALOGUES`]; every catalogue has the same keys, and each
//! key the same `{name}` placeholders, as the English one (checked by [`Catalogue::mismatches`]
//! in the tests).

pub mod narrate;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::sync::OnceLock;

use crate::event::Note;

pub use narrate::narrate_syscall;

/// The catalogues compiled into socklab: (language code, TOML text).
pub const CATALOGUES: &[(&str, &str)] = &[
    ("en", include_str!("../../locales/en.toml")),
    ("ko", include_str!("../../locales/ko.toml")),
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

static ACTIVE: OnceLock<(Catalogue, Catalogue)> = OnceLock::new();

/// Chooses the language for this process (first call wins). Unknown codes fall back to
/// English; returns the code in use.
pub fn set_lang(lang: &str) -> String {
    let (active, _) = ACTIVE.get_or_init(|| load(lang));
    active.lang.clone()
}

fn load(lang: &str) -> (Catalogue, Catalogue) {
    let fallback = Catalogue::builtin(FALLBACK).expect("English catalogue exists");
    let active = Catalogue::builtin(lang).unwrap_or_else(|| fallback.clone());
    (active, fallback)
}

fn catalogues() -> &'static (Catalogue, Catalogue) {
    ACTIVE.get_or_init(|| load(FALLBACK))
}

/// The language in use (`en` until [`set_lang`] chose another).
pub fn lang() -> &'static str {
    let (active, _) = catalogues();
    &active.lang
}

/// True when the catalogue has a message for `key`.
pub fn has(key: &str) -> bool {
    let (active, fallback) = catalogues();
    active.messages.contains_key(key) || fallback.messages.contains_key(key)
}

/// The message for `key` with `{name}` placeholders filled in; the key itself if unknown.
pub fn text(key: &str, args: &[(&str, String)]) -> String {
    let (active, fallback) = catalogues();
    let template = active
        .messages
        .get(key)
        .or_else(|| fallback.messages.get(key))
        .map_or(key, String::as_str);
    fill(template, args)
}

fn fill(template: &str, args: &[(&str, String)]) -> String {
    let mut out = template.to_string();
    for (name, value) in args {
        out = out.replace(&format!("{{{name}}}"), value);
    }
    out
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
