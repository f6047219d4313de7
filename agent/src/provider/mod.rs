//! LLM providers: an OpenAI-compatible Chat Completions client (OpenAI, OpenRouter, DeepSeek,
//! Groq, Gemini, vLLM, Ollama, any `apiBase`) and Anthropic's Messages API. Which one serves a
//! model is decided by `select`, from the config alone (unit-tested).

pub mod anthropic;
pub mod message;
pub mod openai;

pub use message::{Message, Reply, ToolCall, ToolSpec};

use crate::config::{Config, ProviderConfig};
use std::collections::BTreeMap;
use std::time::Duration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    OpenAi,
    Anthropic,
}

/// Providers we know by name: default base URL, wire format, and words that pick them from a
/// model name.
struct Known {
    name: &'static str,
    base: Option<&'static str>,
    format: Format,
    keywords: &'static [&'static str],
}

const KNOWN: &[Known] = &[
    Known {
        name: "openrouter",
        base: Some("https://openrouter.ai/api/v1"),
        format: Format::OpenAi,
        keywords: &["openrouter"],
    },
    Known {
        name: "anthropic",
        base: Some("https://api.anthropic.com/v1"),
        format: Format::Anthropic,
        keywords: &["anthropic", "claude"],
    },
    Known {
        name: "openai",
        base: Some("https://api.openai.com/v1"),
        format: Format::OpenAi,
        keywords: &["openai", "gpt"],
    },
    Known {
        name: "deepseek",
        base: Some("https://api.deepseek.com/v1"),
        format: Format::OpenAi,
        keywords: &["deepseek"],
    },
    Known {
        name: "groq",
        base: Some("https://api.groq.com/openai/v1"),
        format: Format::OpenAi,
        keywords: &["groq"],
    },
    Known {
        name: "gemini",
        base: Some("https://generativelanguage.googleapis.com/v1beta/openai"),
        format: Format::OpenAi,
        keywords: &["gemini"],
    },
    Known {
        name: "ollama",
        base: Some("http://localhost:11434/v1"),
        format: Format::OpenAi,
        keywords: &["ollama"],
    },
    Known {
        name: "vllm",
        base: None,
        format: Format::OpenAi,
        keywords: &["vllm"],
    },
];

#[derive(Debug, thiserror::Error)]
pub enum ProviderError {
    #[error("no provider is configured for model {model:?}: set providers.<name>.apiKey (openrouter, anthropic, openai, deepseek, groq, gemini) or providers.<name>.apiBase in the config; `nanobot onboard` writes a template")]
    NoneConfigured { model: String },
    #[error("agents.defaults.provider is {0:?}, but providers.{0} is not in the config: add it with its apiKey{more}", more = needs_base(.0))]
    UnknownProvider(String),
    #[error("agents.defaults.provider is {0:?}, but providers.{0}.apiKey is empty: set it (export the variable it refers to), or choose another provider in agents.defaults.provider")]
    NoKey(String),
    #[error("provider {0} has no apiBase; set providers.{0}.apiBase")]
    NoBase(String),
    #[error("provider {provider} rejected the API key (HTTP 401) for model {model}: {body}; check providers.{provider}.apiKey")]
    Unauthorized {
        provider: String,
        model: String,
        body: String,
    },
    #[error("provider {provider} does not know model {model} (HTTP 404 at {url}): {body}")]
    NotFound {
        provider: String,
        model: String,
        url: String,
        body: String,
    },
    #[error("provider {provider} answered HTTP {status} for model {model}: {body}")]
    Status {
        provider: String,
        model: String,
        status: u16,
        body: String,
    },
    #[error("provider {provider} (model {model}) failed after {}: {last}; check that the server is up and providers.{provider}.apiBase", crate::text::count(u64::from(*attempts), "attempt"))]
    GaveUp {
        provider: String,
        model: String,
        attempts: u32,
        last: String,
    },
    #[error("provider {provider} sent a response we cannot read: {msg}")]
    Decode { provider: String, msg: String },
    #[error("building the HTTP client: {0}")]
    Client(String),
}

/// What else a provider entry needs besides a key: an apiBase unless we know its URL.
fn needs_base(name: &str) -> &'static str {
    if KNOWN.iter().any(|k| k.name == name && k.base.is_some()) {
        ""
    } else {
        " and apiBase"
    }
}

/// A provider ready to be called.
#[derive(Debug, Clone)]
pub struct Provider {
    pub name: String,
    pub format: Format,
    pub base: String,
    pub api_key: Option<String>,
    pub headers: BTreeMap<String, String>,
    /// The model name as sent to the API.
    pub model: String,
    pub retries: u32,
    pub http: reqwest::Client,
    /// Why this provider (see [`Choice::why`]).
    pub why: String,
    /// See [`Choice::passed_over`].
    pub passed_over: Vec<String>,
}

/// The pure part of the choice: which provider and which model name to send, and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Choice {
    pub name: String,
    pub model: String,
    /// The rule that chose it, in the config's words (`agents.defaults.provider = custom`).
    pub why: String,
    /// Other providers that have a key or an apiBase and were passed over by the fallback rule:
    /// the choice is a guess worth a warning (set agents.defaults.provider).
    pub passed_over: Vec<String>,
}

/// Providers that answer without a key (local servers).
const KEYLESS: &[&str] = &["ollama", "vllm"];

fn usable(p: &ProviderConfig) -> bool {
    p.api_key.as_deref().is_some_and(|k| !k.is_empty())
        || p.api_base.as_deref().is_some_and(|b| !b.is_empty())
}

/// Pick the provider for the configured model. `agents.defaults.provider` decides when set (onboard
/// writes it); it must be configured, with a key unless it has an apiBase or needs none (ollama,
/// vllm). Without it (configs older than that key), as the Python nanobot does: a `name/` prefix
/// naming a configured provider (stripped); else a configured provider whose keywords appear in
/// the model name; else the only configured one; else, among several, OpenRouter (a gateway to
/// every model), then the first by name, reported in `passed_over` so the caller can warn.
pub fn choose(cfg: &Config) -> Result<Choice, ProviderError> {
    let model = cfg.agents.defaults.model.clone();
    let configured: Vec<&String> = cfg
        .providers
        .iter()
        .filter(|(_, p)| usable(p))
        .map(|(n, _)| n)
        .collect();
    let pick = |name: &str, model: String, why: String| Choice {
        name: name.to_string(),
        model,
        why,
        passed_over: vec![],
    };
    if let Some(p) = cfg
        .agents
        .defaults
        .provider
        .as_deref()
        .filter(|p| !p.is_empty())
    {
        let Some(pc) = cfg.providers.get(p) else {
            return Err(ProviderError::UnknownProvider(p.to_string()));
        };
        if !usable(pc) && !KEYLESS.contains(&p) {
            return Err(ProviderError::NoKey(p.to_string()));
        }
        let m = model
            .strip_prefix(&format!("{p}/"))
            .unwrap_or(&model)
            .to_string();
        return Ok(pick(p, m, format!("agents.defaults.provider = {p}")));
    }
    if let Some((prefix, rest)) = model.split_once('/') {
        if configured.iter().any(|n| n.as_str() == prefix) {
            return Ok(pick(
                prefix,
                rest.into(),
                format!("the model's prefix {prefix}/ names a configured provider"),
            ));
        }
    }
    let lower = model.to_ascii_lowercase();
    for k in KNOWN {
        if configured.iter().any(|n| n.as_str() == k.name) {
            if let Some(w) = k.keywords.iter().find(|w| lower.contains(*w)) {
                let why = format!("the model name contains {w:?}");
                return Ok(pick(k.name, model, why));
            }
        }
    }
    if let [only] = configured.as_slice() {
        return Ok(pick(
            only,
            model,
            "it is the only provider with a key or apiBase".into(),
        ));
    }
    let first = configured
        .iter()
        .find(|n| n.as_str() == "openrouter")
        .or(configured.first());
    match first {
        Some(n) => Ok(Choice {
            name: n.to_string(),
            model,
            why: format!(
                "agents.defaults.provider is not set and several providers have a key or apiBase \
                 ({}): {n} comes first",
                configured
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
            passed_over: configured
                .iter()
                .filter(|o| o != &n)
                .map(|o| o.to_string())
                .collect(),
        }),
        None => Err(ProviderError::NoneConfigured { model }),
    }
}

pub fn select(cfg: &Config) -> Result<Provider, ProviderError> {
    let c = choose(cfg)?;
    let pc = cfg.providers.get(&c.name).cloned().unwrap_or_default();
    let known = KNOWN.iter().find(|k| k.name == c.name);
    let base = pc
        .api_base
        .clone()
        .filter(|b| !b.is_empty())
        .or_else(|| known.and_then(|k| k.base.map(String::from)))
        .ok_or_else(|| ProviderError::NoBase(c.name.clone()))?;
    let format = known.map_or(Format::OpenAi, |k| k.format);
    let timeout = Duration::from_secs(pc.timeout.unwrap_or(120));
    let http = reqwest::Client::builder()
        .connect_timeout(Duration::from_secs(10))
        .timeout(timeout)
        .build()
        .map_err(|e| ProviderError::Client(e.to_string()))?;
    Ok(Provider {
        name: c.name,
        format,
        base: base.trim_end_matches('/').to_string(),
        api_key: pc.api_key.filter(|k| !k.is_empty()),
        headers: pc.extra_headers,
        model: c.model,
        retries: 3,
        http,
        why: c.why,
        passed_over: c.passed_over,
    })
}

impl Provider {
    pub async fn chat(
        &self,
        messages: &[Message],
        tools: &[ToolSpec],
        max_tokens: u32,
        temperature: f32,
    ) -> Result<Reply, ProviderError> {
        let (url, body) = match self.format {
            Format::OpenAi => (
                format!("{}/chat/completions", self.base),
                openai::request(&self.model, messages, tools, max_tokens, temperature),
            ),
            Format::Anthropic => (
                format!("{}/messages", self.base),
                anthropic::request(&self.model, messages, tools, max_tokens, temperature),
            ),
        };
        let v = self.post(&url, &body).await?;
        let decoded = match self.format {
            Format::OpenAi => openai::reply(&v),
            Format::Anthropic => anthropic::reply(&v),
        };
        decoded.map_err(|msg| ProviderError::Decode {
            provider: self.name.clone(),
            msg,
        })
    }

    /// POST with retries on 429, 5xx and connection errors (exponential backoff from 1 s, or the
    /// server's Retry-After), and errors that name the provider and the model.
    async fn post(
        &self,
        url: &str,
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, ProviderError> {
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            let mut req = self.http.post(url).json(body);
            if let Some(k) = &self.api_key {
                req = match self.format {
                    Format::OpenAi => req.bearer_auth(k),
                    Format::Anthropic => req.header("x-api-key", k),
                };
            }
            if self.format == Format::Anthropic {
                req = req.header("anthropic-version", "2023-06-01");
            }
            for (k, v) in &self.headers {
                req = req.header(k, v);
            }
            let (retry_after, last) = match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    let retry_after = resp
                        .headers()
                        .get("retry-after")
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| v.trim().parse::<u64>().ok());
                    let text = resp.text().await.unwrap_or_default();
                    match status {
                        200..=299 => {
                            return serde_json::from_str(&text).map_err(|e| ProviderError::Decode {
                                provider: self.name.clone(),
                                msg: format!("{e}: {}", clip(&text)),
                            })
                        }
                        401 | 403 => {
                            return Err(ProviderError::Unauthorized {
                                provider: self.name.clone(),
                                model: self.model.clone(),
                                body: clip(&text),
                            })
                        }
                        404 => {
                            return Err(ProviderError::NotFound {
                                provider: self.name.clone(),
                                model: self.model.clone(),
                                url: url.into(),
                                body: clip(&text),
                            })
                        }
                        429 | 500..=599 => (retry_after, format!("HTTP {status}: {}", clip(&text))),
                        _ => {
                            return Err(ProviderError::Status {
                                provider: self.name.clone(),
                                model: self.model.clone(),
                                status,
                                body: clip(&text),
                            })
                        }
                    }
                }
                Err(e) if e.is_connect() || e.is_timeout() || e.is_request() => {
                    (None, self.cause(&e))
                }
                Err(e) => {
                    return Err(ProviderError::GaveUp {
                        provider: self.name.clone(),
                        model: self.model.clone(),
                        attempts: attempt,
                        last: self.cause(&e),
                    })
                }
            };
            if attempt > self.retries {
                return Err(ProviderError::GaveUp {
                    provider: self.name.clone(),
                    model: self.model.clone(),
                    attempts: attempt,
                    last,
                });
            }
            let wait = retry_after
                .map(|s| Duration::from_secs(s.min(60)))
                .unwrap_or_else(|| Duration::from_millis(1000 << (attempt - 1).min(5)));
            tracing::warn!(
                provider = %self.name,
                attempt,
                wait_ms = wait.as_millis() as u64,
                "{}: {last} (attempt {attempt} of {}), retrying in {}",
                self.name,
                self.retries + 1,
                seconds(wait)
            );
            tokio::time::sleep(wait).await;
        }
    }
}

impl Provider {
    /// Why a request got no answer, in words: "cannot connect to http://h/v1: connection
    /// refused", "no answer within 120 s", never reqwest's "error sending request" wrapper alone.
    fn cause(&self, e: &reqwest::Error) -> String {
        if e.is_timeout() {
            return format!(
                "no answer from {} within the timeout (providers.{}.timeout)",
                self.base, self.name
            );
        }
        let why = match crate::errors::io_cause(e) {
            Some(io) => crate::errors::plain_io(io),
            None => crate::errors::render_chain(
                std::iter::successors(std::error::Error::source(e), |e| e.source())
                    .map(|e| e.to_string()),
            ),
        };
        if e.is_connect() {
            format!("cannot connect to {}: {why}", self.base)
        } else {
            why
        }
    }
}

/// `1 s`, `500 ms`.
fn seconds(d: Duration) -> String {
    if d.subsec_millis() == 0 {
        format!("{} s", d.as_secs())
    } else {
        format!("{} ms", d.as_millis())
    }
}

fn clip(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(500) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(model: &str, providers: &[(&str, &str)]) -> Config {
        let mut c = Config::default();
        c.agents.defaults.model = model.into();
        for (n, k) in providers {
            c.providers.insert(
                n.to_string(),
                ProviderConfig {
                    api_key: Some(k.to_string()),
                    ..Default::default()
                },
            );
        }
        c
    }

    #[test]
    fn prefix_names_the_provider_and_is_stripped() {
        let c = cfg(
            "anthropic/claude-opus-4-5",
            &[("anthropic", "k"), ("openrouter", "k")],
        );
        let ch = choose(&c).unwrap();
        assert_eq!(
            (ch.name.as_str(), ch.model.as_str()),
            ("anthropic", "claude-opus-4-5")
        );
        assert!(ch.why.contains("prefix anthropic/"), "{}", ch.why);
    }

    #[test]
    fn openrouter_gets_the_full_model_id_when_the_vendor_is_not_configured() {
        let c = cfg("anthropic/claude-opus-4-5", &[("openrouter", "k")]);
        let ch = choose(&c).unwrap();
        assert_eq!(
            (ch.name.as_str(), ch.model.as_str()),
            ("openrouter", "anthropic/claude-opus-4-5")
        );
        assert_eq!(ch.why, "it is the only provider with a key or apiBase");
        assert!(ch.passed_over.is_empty());
    }

    #[test]
    fn keywords_pick_a_configured_provider() {
        let c = cfg("deepseek-chat", &[("deepseek", "k"), ("groq", "k")]);
        assert_eq!(choose(&c).unwrap().name, "deepseek");
        let c = cfg("gpt-4o", &[("openai", "k")]);
        assert_eq!(choose(&c).unwrap().name, "openai");
    }

    #[test]
    fn explicit_provider_wins_and_must_exist() {
        let mut c = cfg("llama3", &[("openrouter", "k")]);
        c.agents.defaults.provider = Some("ollama".into());
        assert!(matches!(choose(&c), Err(ProviderError::UnknownProvider(_))));
        c.providers.insert(
            "ollama".into(),
            ProviderConfig {
                api_base: Some("http://127.0.0.1:11434/v1".into()),
                ..Default::default()
            },
        );
        assert_eq!(choose(&c).unwrap().name, "ollama");
        assert_eq!(choose(&c).unwrap().why, "agents.defaults.provider = ollama");
    }

    /// A custom provider and an OpenRouter key that appears later: with agents.defaults.provider
    /// the custom one stays; without it the fallback is said, with what it passed over.
    #[test]
    fn an_explicit_provider_is_not_displaced_by_another_key() {
        let mut c = cfg("my-model", &[("openrouter", "sk-or")]);
        c.providers.insert(
            "custom".into(),
            ProviderConfig {
                api_base: Some("http://127.0.0.1:9/v1".into()),
                ..Default::default()
            },
        );
        let ch = choose(&c).unwrap();
        assert_eq!(ch.name, "openrouter");
        assert_eq!(ch.passed_over, vec!["custom".to_string()]);
        assert!(
            ch.why.contains("agents.defaults.provider is not set"),
            "{}",
            ch.why
        );
        c.agents.defaults.provider = Some("custom".into());
        let ch = choose(&c).unwrap();
        assert_eq!((ch.name.as_str(), ch.passed_over.len()), ("custom", 0));
    }

    #[test]
    fn an_explicit_provider_without_a_key_is_an_error_naming_the_key() {
        let mut c = cfg("m", &[("openrouter", "")]);
        c.agents.defaults.provider = Some("openrouter".into());
        let e = choose(&c).unwrap_err().to_string();
        assert!(e.contains("providers.openrouter.apiKey is empty"), "{e}");
        // A local server needs no key.
        c.providers
            .insert("ollama".into(), ProviderConfig::default());
        c.agents.defaults.provider = Some("ollama".into());
        assert_eq!(choose(&c).unwrap().name, "ollama");
        c.agents.defaults.provider = Some("anthropic".into());
        let e = choose(&c).unwrap_err().to_string();
        assert!(
            e.contains("providers.anthropic is not in the config"),
            "{e}"
        );
    }

    #[test]
    fn nothing_configured_is_a_clear_error() {
        let c = cfg("gpt-4o", &[]);
        let e = choose(&c).unwrap_err().to_string();
        assert!(e.contains("gpt-4o") && e.contains("apiKey"), "{e}");
    }

    #[test]
    fn custom_provider_needs_a_base() {
        let c = cfg("my-model", &[("mybox", "k")]);
        assert!(matches!(select(&c), Err(ProviderError::NoBase(n)) if n == "mybox"));
        let c = cfg("claude-x", &[("anthropic", "k")]);
        let p = select(&c).unwrap();
        assert_eq!(p.format, Format::Anthropic);
        assert_eq!(p.base, "https://api.anthropic.com/v1");
    }
}
