//! Plain-language notes: keyed messages in per-language catalogues, and the narrator that
//! decides which events deserve one.
//!
//! A catalogue is one TOML file under `locales/` (`key = "text with {name}"`). Adding a language
//! is adding a file and a line in [`CATALOGUES`].

pub mod narrate;

use std::collections::{BTreeMap, HashMap};
use std::sync::OnceLock;

use crate::event::Note;

pub use narrate::narrate_syscall;

/// The catalogues compiled into socklab: (language code, TOML text).
pub const CATALOGUES: &[(&str, &str)] = &[("en", include_str!("../../locales/en.toml"))];

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
