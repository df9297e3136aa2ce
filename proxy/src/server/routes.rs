//! The compiled route table: which route takes a request (host, path prefix at a segment boundary,
//! method — first match in file order), and everything the request path needs about that route,
//! prepared once per configuration so the request path does no parsing.

use std::sync::Arc;

use lexecon_config::classifier::ClassifierConfig;
use lexecon_config::file::{EnforceMode, RouteConfig};

use crate::limit::RouteLimiter;
use crate::server::consent::ConsentLookup;
use crate::server::upstream::Upstream;

/// One route, ready for the request path.
#[derive(Debug)]
pub struct Route {
    pub name: Arc<str>,
    host: Option<String>,
    prefix: String,
    methods: Vec<http::Method>,
    pub domain: String,
    pub classifier: ClassifierConfig,
    pub needs_body: bool,
    /// For MCP routes, how a blocked call is answered in JSON-RPC; `None` on other routes.
    pub mcp_denial: Option<lexecon_config::classifier::DenialStyle>,
    pub upstream: Arc<Upstream>,
    pub limiter: Option<RouteLimiter>,
    /// The largest body read (whole, before the decision) on a route whose classifier reads it.
    pub body_limit: u64,
    pub passthrough: bool,
    /// Whether the route takes WebSocket handshakes (`upgrade: [websocket]`).
    pub websocket: bool,
    /// The tool pins of an MCP route with `pin_tools` (read from its pin file when built).
    pub pins: Option<Arc<crate::server::tool_pins::RoutePins>>,
    /// FHIR routes with `consent_lookup`: consent from the server's `Consent` resources.
    pub consent: Option<Arc<ConsentLookup>>,
}

impl Route {
    pub fn build(
        config: &RouteConfig,
        upstream: Arc<Upstream>,
        global_mode: EnforceMode,
    ) -> Result<Self, String> {
        let mut methods = Vec::with_capacity(config.matcher.methods.len());
        for m in &config.matcher.methods {
            methods.push(
                http::Method::from_bytes(m.to_ascii_uppercase().as_bytes())
                    .map_err(|_| format!("route {}: {m:?} is not an HTTP method", config.name))?,
            );
        }
        let mode = config.mode.unwrap_or(global_mode);
        let pins = match &config.classifier {
            ClassifierConfig::Mcp(mcp) => match &mcp.pin_tools {
                Some(pin_tools) => Some(Arc::new(
                    crate::server::tool_pins::RoutePins::load(pin_tools)
                        .map_err(|e| format!("route {}: pin_tools: {e}", config.name))?,
                )),
                None => None,
            },
            _ => None,
        };
        Ok(Self {
            name: Arc::from(config.name.as_str()),
            host: config.matcher.host.as_ref().map(|h| h.to_ascii_lowercase()),
            prefix: config.matcher.path_prefix.clone(),
            methods,
            domain: config.domain.clone(),
            classifier: config.classifier.clone(),
            needs_body: lexecon_classify::needs_body(&config.classifier),
            mcp_denial: match &config.classifier {
                ClassifierConfig::Mcp(mcp) => Some(mcp.denial),
                _ => None,
            },
            upstream,
            limiter: config.rate_limit.as_ref().map(RouteLimiter::new),
            body_limit: config.body_limit.bytes(),
            passthrough: mode == EnforceMode::Passthrough,
            websocket: config
                .upgrade
                .contains(&lexecon_config::file::UpgradeProtocol::Websocket),
            pins,
            consent: match &config.classifier {
                ClassifierConfig::Fhir(fhir) => fhir
                    .consent_lookup
                    .as_ref()
                    .map(|c| Arc::new(ConsentLookup::new(c, fhir.base_path.as_deref()))),
                _ => None,
            },
        })
    }

    /// Whether this route takes the request.
    pub fn matches(&self, host: Option<&str>, path: &str, method: &http::Method) -> bool {
        if !self.methods.is_empty() && !self.methods.contains(method) {
            return false;
        }
        if let Some(want) = &self.host {
            match host {
                Some(h) if strip_port(h).eq_ignore_ascii_case(want) => {}
                _ => return false,
            }
        }
        prefix_matches(&self.prefix, path)
    }
}

/// `/mcp` matches `/mcp`, `/mcp/x` and `/mcp?x`, not `/mcpx`; a prefix ending in `/` matches
/// everything below it.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    match path.strip_prefix(prefix) {
        Some(rest) => {
            prefix.ends_with('/')
                || rest.is_empty()
                || rest.starts_with('/')
                || rest.starts_with('?')
        }
        None => false,
    }
}

fn strip_port(host: &str) -> &str {
    if host.starts_with('[') {
        return host.split_once(']').map_or(host, |(h, _)| &h[1..]);
    }
    host.rsplit_once(':').map_or(host, |(h, _)| h)
}

/// The routes in file order.
#[derive(Debug, Default)]
pub struct RouteTable {
    pub routes: Vec<Route>,
}

impl RouteTable {
    /// The first route that takes the request.
    pub fn find(&self, host: Option<&str>, path: &str, method: &http::Method) -> Option<&Route> {
        self.routes.iter().find(|r| r.matches(host, path, method))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_at_segment_boundaries() {
        assert!(prefix_matches("/mcp", "/mcp"));
        assert!(prefix_matches("/mcp", "/mcp/sub"));
        assert!(!prefix_matches("/mcp", "/mcpx"));
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/v1/", "/v1/orders"));
        assert!(!prefix_matches("/v1", "/v2/orders"));
    }

    #[test]
    fn host_match_ignores_port_and_case() {
        assert_eq!(strip_port("tools.example:8080"), "tools.example");
        assert_eq!(strip_port("[::1]:8080"), "::1");
        assert_eq!(strip_port("tools.example"), "tools.example");
    }
}
