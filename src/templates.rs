//! Templates: the built-in Tera templates (embedded), overrides by file name
//! from `--templates DIR`, and the filters every value goes through.
//!
//! Every value a template prints goes through a filter that *refuses* (not
//! escapes) anything outside a known-safe alphabet: the grammar check in the
//! scan is the first line of defence, these filters are the second, and they
//! also guard user-written templates. A command compiles only the templates
//! its host uses, so a broken override of one host's template cannot break
//! another host.

use crate::layout;
use anyhow::{Context, Result, bail};
use serde_json::Value;
use std::collections::HashMap;
use std::path::Path;
use tera::Tera;

/// (file name, built-in text). The file name is what `--templates DIR` overrides.
pub(crate) const BUILTIN: &[(&str, &str)] = &[
    (
        "nginx.conf.tera",
        include_str!("../templates/nginx.conf.tera"),
    ),
    (
        "nginx_map.tera",
        include_str!("../templates/nginx_map.tera"),
    ),
    (
        "nginx_tables.tera",
        include_str!("../templates/nginx_tables.tera"),
    ),
    (
        "netlify_rules.tera",
        include_str!("../templates/netlify_rules.tera"),
    ),
    (
        "netlify_headers.tera",
        include_str!("../templates/netlify_headers.tera"),
    ),
    (
        "netlify_redirects.tera",
        include_str!("../templates/netlify_redirects.tera"),
    ),
    (
        "cloudflare_worker.js.tera",
        include_str!("../templates/cloudflare_worker.js.tera"),
    ),
    (
        "apache_htaccess.tera",
        include_str!("../templates/apache_htaccess.tera"),
    ),
    (
        "apache_vhost.tera",
        include_str!("../templates/apache_vhost.tera"),
    ),
    (
        "apache_rules.tera",
        include_str!("../templates/apache_rules.tera"),
    ),
    (
        "caddyfile.tera",
        include_str!("../templates/caddyfile.tera"),
    ),
    (
        "caddy_map.tera",
        include_str!("../templates/caddy_map.tera"),
    ),
    ("s3.sh.tera", include_str!("../templates/s3.sh.tera")),
    ("storj.sh.tera", include_str!("../templates/storj.sh.tera")),
    (
        "upload_plan.sh.tera",
        include_str!("../templates/upload_plan.sh.tera"),
    ),
    (
        "upload_plan_rows.tera",
        include_str!("../templates/upload_plan_rows.tera"),
    ),
];

pub(crate) struct Templates {
    tera: Tera,
}

impl Templates {
    /// Compiles `names` (built-in, or the file of that name in `dir`).
    pub(crate) fn load(dir: Option<&Path>, names: &[&str]) -> Result<Templates> {
        let mut tera = Tera::default();
        tera.autoescape_on(vec![]);
        let mut sources = Vec::new();
        for name in names {
            let Some((_, builtin)) = BUILTIN.iter().find(|(n, _)| n == name) else {
                bail!("no built-in template {name}");
            };
            let text = match dir.map(|d| d.join(name)) {
                Some(path) if path.exists() => std::fs::read_to_string(&path)
                    .with_context(|| format!("cannot read template {}", path.display()))?,
                _ => builtin.to_string(),
            };
            sources.push((*name, text));
        }
        tera.add_raw_templates(sources)
            .context("invalid template")?;
        for (name, filter) in FILTERS {
            tera.register_filter(name, filter);
        }
        Ok(Templates { tera })
    }

    /// The fuzz targets re-register the filters and set an escape function, so every value
    /// a template prints can be told apart from the template's own text.
    #[cfg(feature = "fuzzing")]
    pub(crate) fn tera_mut(&mut self) -> &mut Tera {
        &mut self.tera
    }

    /// Renders from a JSON object, moved in without another copy. Every
    /// template also gets `grammar`: the OCI grammar's regex spellings.
    pub(crate) fn render_value(&self, name: &str, mut context: Value) -> Result<String> {
        if let Value::Object(map) = &mut context {
            map.insert("grammar".into(), grammar_patterns());
            map.insert("referrers".into(), referrers_facts());
        }
        let ctx = tera::Context::from_value(context).context("template context")?;
        self.tera.render(name, &ctx).map_err(|e| {
            // Tera hides the cause (e.g. a filter's refusal) in its source chain.
            let mut msg = format!("rendering {name} failed");
            let mut source = std::error::Error::source(&e);
            while let Some(s) = source {
                msg.push_str(&format!(": {s}"));
                source = s.source();
            }
            anyhow::anyhow!(msg)
        })
    }
}

/// A part's context: `{key: rows}`, the rows moved in (`json!` would copy every one).
pub(crate) fn part_context(key: &str, rows: Vec<Value>) -> Value {
    Value::Object(serde_json::Map::from_iter([(
        key.to_string(),
        Value::Array(rows),
    )]))
}

/// What a template prints, with `| safe`, where a table goes that another template renders
/// apart, in parts ([`Templates::render_with_slots`]): a million rows in one Tera context
/// cost gigabytes (issue 16). NUL is in no name, tag, path or template.
pub(crate) fn slot(i: usize) -> String {
    format!("\u{0}registrish-slot-{i}\u{0}")
}

impl Templates {
    /// Renders `name` from `context`, whose values include `slots` [`slot`]s, each printed
    /// once and in order, into `out`, with slot i filled by rendering `part(i)` (a template
    /// and its context). Parts are made in order here and rendered a few at a time on every
    /// core (Tera was half of Netlify's time at a million tags), so only the frame and those
    /// few parts are ever in memory.
    pub(crate) fn render_with_slots(
        &self,
        name: &str,
        context: Value,
        slots: usize,
        out: &mut dyn std::io::Write,
        mut part: impl FnMut(usize) -> (&'static str, Value),
    ) -> Result<()> {
        let frame = self.render_value(name, context)?;
        // Every slot is checked before a byte is written.
        let mut at = Vec::with_capacity(slots);
        let mut from = 0;
        for i in 0..slots {
            let mark = slot(i);
            let Some(found) = frame[from..].find(&mark) else {
                bail!(
                    "{name} must print each table once, in order, as it is (`| safe`): table {i} is missing"
                );
            };
            at.push((from + found, mark.len()));
            from += found + mark.len();
        }
        if frame[from..].contains("\u{0}registrish-slot-") {
            bail!("{name} must print each table once, in order, as it is (`| safe`)");
        }
        let write = |out: &mut dyn std::io::Write, text: &str| {
            out.write_all(text.as_bytes())
                .context("cannot write the output")
        };
        let mut from = 0;
        let batch = crate::parallel::workers().max(1);
        let build = |first: usize, part: &mut dyn FnMut(usize) -> (&'static str, Value)| {
            (first..slots.min(first + batch))
                .map(|i| std::sync::Mutex::new(Some(part(i))))
                .collect::<Vec<_>>()
        };
        let render = |parts: &[std::sync::Mutex<Option<(&str, Value)>>]| {
            crate::parallel::map(parts, |p| {
                let (template, context) = p
                    .lock()
                    .expect("one thread a part")
                    .take()
                    .expect("each part rendered once");
                self.render_value(template, context)
            })
        };
        // The next batch's values are made while this one renders: making them is a third of
        // the work (3.2 million Netlify rules at a million tags), and it runs on one thread.
        let mut next = build(0, &mut part);
        for first in (0..slots).step_by(batch) {
            let current = std::mem::take(&mut next);
            let texts = std::thread::scope(|s| {
                let rendering = s.spawn(|| render(&current));
                if first + batch < slots {
                    next = build(first + batch, &mut part);
                }
                rendering.join().expect("rendering thread panicked")
            });
            for (text, (start, len)) in texts.into_iter().zip(&at[first..]) {
                write(out, &frame[from..*start])?;
                write(out, &text?)?;
                from = start + len;
            }
        }
        write(out, &frame[from..])
    }
}

/// A filter as Tera calls it.
pub(crate) type Filter = fn(&Value, &HashMap<String, Value>) -> tera::Result<Value>;

/// Every filter templates may use, by the name they use it under.
pub(crate) const FILTERS: &[(&str, Filter)] = &[
    ("token", token_filter),
    ("map_entry", map_entry_filter),
    ("quoted_path", quoted_path_filter),
    ("single_quoted", single_quoted_filter),
    ("shell_quoted", shell_quoted_filter),
    ("regex_literal", regex_literal_filter),
    ("rewrite_table", rewrite_table_filter),
    ("host_port", host_port_filter),
    ("js_regex", js_regex_filter),
    ("backquoted", backquoted_filter),
    ("double_quoted", double_quoted_filter),
    ("base64_token", base64_token_filter),
];

/// The grammar as templates spell it in the routes a host matches itself.
/// What every host answers on `/v2/<name>/referrers/<digest>` (OCI 1.1, distribution-spec
/// "Listing Referrers"): the index prepare wrote, with `media_type`, else the empty index
/// (`empty`, also the file `empty_file` prepare writes) with 200.
fn referrers_facts() -> Value {
    serde_json::json!({
        "media_type": crate::media::MediaType::OciIndex.as_str(),
        "empty": std::str::from_utf8(layout::EMPTY_REFERRERS_BODY).expect("ASCII"),
        "empty_file": layout::request_path(&layout::empty_referrers_file()),
        // The same file relative to the document root, as a regex (Apache's per-directory
        // rules see paths without the leading slash).
        "empty_file_pattern": regex::escape(&layout::empty_referrers_file()),
        "dir": layout::REFERRERS_DIR,
    })
}

fn grammar_patterns() -> Value {
    use crate::grammar::{DIGEST_PATTERN, NAME_PATTERN, TAG_PATTERN};
    serde_json::json!({"name": NAME_PATTERN, "tag": TAG_PATTERN, "digest": DIGEST_PATTERN})
}

/// A regular expression inside a JavaScript `/.../` literal: `/` written
/// `\/`. Only the grammar's own alphabet is accepted (no backslash, quote,
/// newline), so nothing can end the literal early.
fn js_regex_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(value, "js_regex")?;
    if !made_of(s, b"._-/:+*?()[]{}|,^$") {
        return Err(tera::Error::msg(format!(
            "refusing {:?} as a JavaScript regex",
            crate::problem::printable(s)
        )));
    }
    Ok(Value::String(s.replace('/', "\\/")))
}

/// Punctuation of the OCI name, tag and digest alphabets (plus `+` of media
/// types): inert in every config language emitted here.
const TOKEN_PUNCT: &[u8] = b"._-/:+";

/// A set of ASCII bytes, one bit each (any other byte is left out).
const fn ascii_set(bytes: &[u8]) -> u128 {
    let mut set = 0u128;
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] < 128 {
            set |= 1 << bytes[i];
        }
        i += 1;
    }
    set
}

const ASCII_ALPHANUMERIC: u128 =
    ascii_set(b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz");

/// `s` is non-empty and made of ASCII letters, digits and `punct` only: the
/// one alphabet check every filter below builds on.
fn made_of(s: &str, punct: &[u8]) -> bool {
    // One bit per ASCII byte, tested once per byte: `token` alone runs 10 million times at a
    // million tags (issue 16), and a scan of `punct` per byte was 7% of Netlify's render.
    let allowed = ASCII_ALPHANUMERIC | ascii_set(punct);
    !s.is_empty() && s.bytes().all(|b| b < 128 && allowed & (1 << b) != 0)
}

fn as_str<'a>(value: &'a Value, filter: &str) -> tera::Result<&'a str> {
    value
        .as_str()
        .ok_or_else(|| tera::Error::msg(format!("{filter}: expected a string, got {value}")))
}

fn token_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(value, "token")?;
    if !made_of(s, TOKEN_PUNCT) {
        return Err(tera::Error::msg(format!(
            "refusing to print {s:?}: not a plain name, tag, digest or type"
        )));
    }
    Ok(value.clone())
}

/// A lookup-table row: `KEY VALUE`, both plain tokens, or a quoted
/// case-sensitive regex key (`"~^...$"`) whose body is a token with `.` escaped.
fn map_entry_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(value, "map_entry")?;
    let plain = |t: &str| made_of(t, TOKEN_PUNCT);
    let ok = match s.split_once(' ') {
        Some((key, val)) if plain(val) => {
            match key.strip_prefix("\"~^").and_then(|k| k.strip_suffix("$\"")) {
                Some(regex) => {
                    plain(&regex.replace("\\.", ".")) && !regex.replace("\\.", "").contains('.')
                }
                None => plain(key),
            }
        }
        _ => false,
    };
    if !ok {
        return Err(tera::Error::msg(format!("refusing map entry {s:?}")));
    }
    Ok(value.clone())
}

/// A base64 string (a Caddy password hash): its alphabet and padding only.
fn base64_token_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(value, "base64_token")?;
    if !made_of(s.trim_end_matches('='), b"+/") {
        return Err(tera::Error::msg(format!(
            "refusing {:?}: not base64",
            crate::problem::printable(s)
        )));
    }
    Ok(value.clone())
}

/// Words and spaces inside double quotes (a realm): letters, digits, space and `. _ -` only,
/// which no config or script reads as syntax inside quotes.
fn double_quoted_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(value, "double_quoted")?;
    if s.is_empty()
        || !s
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b' ' | b'.' | b'_' | b'-'))
    {
        return Err(tera::Error::msg(format!(
            "refusing to quote {:?}: only letters, digits, spaces and . _ -",
            crate::problem::printable(s)
        )));
    }
    Ok(Value::String(format!("\"{s}\"")))
}

/// A filesystem path inside double quotes: nginx and Caddy expand `$` and
/// Apache `%{`, and none of them can escape everything, so such paths are refused.
fn quoted_path_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(value, "quoted_path")?;
    if s.is_empty()
        || s.chars().any(|c| {
            c.is_control() || matches!(c, '"' | '\'' | '\\' | '$' | '%' | '{' | '}' | ';' | '`')
        })
    {
        return Err(tera::Error::msg(format!(
            "refusing path {:?}: it holds a quote, backslash, $, %, braces, ; or a control character",
            crate::problem::printable(s)
        )));
    }
    Ok(Value::String(format!("\"{s}\"")))
}

/// A Caddyfile token in backquotes (a fixed JSON body): everything inside is
/// literal except a backquote, which is refused, as are control characters.
fn backquoted_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(value, "backquoted")?;
    if s.is_empty() || s.chars().any(|c| c.is_control() || c == '`') {
        return Err(tera::Error::msg(format!(
            "refusing to backquote {:?}",
            crate::problem::printable(s)
        )));
    }
    Ok(Value::String(format!("`{s}`")))
}

/// Fixed JSON bodies inside nginx single quotes.
fn single_quoted_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(value, "single_quoted")?;
    if s.chars()
        .any(|c| c.is_control() || c == '\'' || c == '\\' || c == '$')
    {
        return Err(tera::Error::msg(format!("refusing to single-quote {s:?}")));
    }
    Ok(Value::String(format!("'{s}'")))
}

/// One word for a POSIX shell, in single quotes. Inside them every byte is
/// literal except the quote itself, which no escape can put there, so a value
/// holding `'` is refused; so are control characters (a newline would end a
/// command inside a script) and an empty value (an empty word is a bug here).
fn shell_quoted_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(value, "shell_quoted")?;
    if s.is_empty() || s.chars().any(|c| c.is_control() || c == '\'') {
        return Err(tera::Error::msg(format!(
            "refusing to quote {:?} for the shell: it is empty or holds a single quote or a control character",
            crate::problem::printable(s)
        )));
    }
    Ok(Value::String(format!("'{s}'")))
}

/// A name, tag or digest as a regex that matches exactly it: the token
/// alphabet with `.` written `[.]`, a form that needs no backslash (Caddyfile
/// and Apache treat backslashes differently) and no quoting.
fn regex_literal_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(value, "regex_literal")?;
    if !made_of(s, b"._-/:") {
        return Err(tera::Error::msg(format!(
            "refusing {:?} as a regex literal: not a plain name, tag or digest",
            crate::problem::printable(s)
        )));
    }
    Ok(Value::String(s.replace('.', "[.]")))
}

/// A lookup table inside one mod_rewrite condition (`;KEY=VALUE;KEY=VALUE`,
/// see src/render/apache.rs): tags, digests and type codes only. `;` and `=`
/// delimit entries, so neither may appear inside one, and nothing mod_rewrite
/// expands (`%`, `$`, `\`) or Apache's parser reads (quotes, spaces) may appear.
fn rewrite_table_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(value, "rewrite_table")?;
    let entry_ok = |e: &str| match e.split_once('=') {
        Some((key, val)) => made_of(key, b"._-:") && made_of(val, b"._-:"),
        None => false,
    };
    let ok = s
        .strip_prefix(';')
        .is_some_and(|rest| rest.split(';').all(entry_ok));
    if !ok {
        return Err(tera::Error::msg(format!(
            "refusing rewrite table {:?}: expected ;KEY=VALUE entries of names, tags and digests",
            crate::problem::printable(&s.chars().take(200).collect::<String>())
        )));
    }
    Ok(value.clone())
}

fn host_port_filter(value: &Value, _: &HashMap<String, Value>) -> tera::Result<Value> {
    let s = as_str(value, "host_port")?;
    if !crate::address::is_host_port(s) {
        return Err(tera::Error::msg(format!(
            "refusing address {:?}: expected PORT, HOST, HOST:PORT or [IPv6]:PORT",
            crate::problem::printable(s)
        )));
    }
    Ok(value.clone())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtin_templates_compile() {
        let all: Vec<&str> = BUILTIN.iter().map(|(n, _)| *n).collect();
        Templates::load(None, &all).unwrap();
    }

    #[test]
    fn js_regex_escapes_slashes_only() {
        let none = HashMap::new();
        assert_eq!(
            js_regex_filter(&Value::from("a(?:/b)*"), &none).unwrap(),
            Value::from("a(?:\\/b)*")
        );
        assert!(js_regex_filter(&Value::from("a\nb"), &none).is_err());
    }

    #[test]
    fn alphabets_admit_exactly_letters_digits_and_their_punctuation() {
        // Every byte alone and inside a token, against the definition spelled plainly
        // (bytes 128-255 as the continuation of a two-byte character).
        for punct in [TOKEN_PUNCT, b"+/", b"._-:", b"._-/:+*?()[]{}|,^$"] {
            for b in 0..=255u8 {
                let c = char::from(b);
                let expected = c.is_ascii_alphanumeric() || punct.contains(&b);
                let text = c.to_string();
                assert_eq!(made_of(&text, punct), expected, "{b} with {punct:?}");
                assert_eq!(made_of(&format!("a{text}0"), punct), expected, "{b} inside");
            }
            assert!(!made_of("", punct));
        }
    }

    #[test]
    fn filters_refuse_unsafe_values() {
        let none = HashMap::new();
        assert!(token_filter(&Value::from("/v2/a/manifests/latest"), &none).is_ok());
        for bad in ["x;return 200 pwned", "a\"b", "$host", "t}", "a\nb", ""] {
            assert!(token_filter(&Value::from(bad), &none).is_err(), "{bad:?}");
        }
        assert_eq!(
            quoted_path_filter(&Value::from("/srv/my tree"), &none).unwrap(),
            Value::from("\"/srv/my tree\"")
        );
        for bad in ["/srv/$x", "/a\"b", "/a\nb", "/a;b", "/a{b"] {
            assert!(
                quoted_path_filter(&Value::from(bad), &none).is_err(),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn shell_quoting_is_literal_or_refused() {
        let none = HashMap::new();
        // `$`, backquotes, backslashes, spaces and double quotes are literal in single quotes.
        for (raw, quoted) in [
            ("/srv/my tree", "'/srv/my tree'"),
            ("$(rm -rf /)`x`\\n", "'$(rm -rf /)`x`\\n'"),
            (r#"{"Content-Type":"a/b"}"#, r#"'{"Content-Type":"a/b"}'"#),
        ] {
            assert_eq!(
                shell_quoted_filter(&Value::from(raw), &none).unwrap(),
                Value::from(quoted)
            );
        }
        for bad in ["it's", "a\nb", "a\rb", "\u{7f}", "", "a\u{0}b"] {
            assert!(
                shell_quoted_filter(&Value::from(bad), &none).is_err(),
                "{bad:?}"
            );
        }
        assert!(shell_quoted_filter(&Value::from(3), &none).is_err());
    }

    #[test]
    fn server_filters_refuse_unsafe_values() {
        let none = HashMap::new();
        assert_eq!(
            regex_literal_filter(&Value::from("demo/v1.0_x-y"), &none).unwrap(),
            Value::from("demo/v1[.]0_x-y")
        );
        for bad in ["a|b", "a(b", "a\\b", "a b", "a{1}", "a$", "", "a+b", "a*"] {
            assert!(
                regex_literal_filter(&Value::from(bad), &none).is_err(),
                "{bad:?}"
            );
        }
        let table = ";latest=dabc;sha256:0f=o;v1.2_x-Y=i00";
        assert!(rewrite_table_filter(&Value::from(table), &none).is_ok());
        for bad in [
            "latest=d",
            ";latest=d;",
            ";latest",
            ";=d",
            ";a=b=c",
            ";a=%{ENV:X}",
            ";a=$1",
            ";a=b c",
            ";a=b\"",
            ";a/b=c",
            ";a=b\\",
            "",
        ] {
            assert!(
                rewrite_table_filter(&Value::from(bad), &none).is_err(),
                "{bad:?}"
            );
        }
        for good in [
            "80",
            "127.0.0.1:5080",
            "*:80",
            ":80",
            "[::1]:5080",
            "[::]",
            "registry.example.org",
            "registry.example.org:443",
            "*.example.org",
            "localhost",
        ] {
            assert!(
                host_port_filter(&Value::from(good), &none).is_ok(),
                "{good:?}"
            );
        }
        for bad in [
            "", "0", "70000", "a b", "a;b", "a\nb", "x}", "${HOST}", "a:b:c", "[::1", "[::1]x",
            "http://a", "-a.org", "a..org", "a:80 ssl", "\"a\"",
        ] {
            assert!(
                host_port_filter(&Value::from(bad), &none).is_err(),
                "{bad:?}"
            );
        }
    }
}
