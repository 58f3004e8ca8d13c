//! A Rust client for chatd's REST API, shared by the integration tests, the
//! command line and the benchmark.
//!
//! [`RestClient`] keeps one keep-alive connection pool and speaks the
//! `/app-id/{app_id}/…` path form by default (`/{org}/{app}/…` with
//! [`RestClient::with_org_app`]). Every call returns the raw status and JSON
//! so that tests can check error answers as closely as successes.

pub mod ws;

pub use ws::{Event, WsClient, WsError};

use reqwest::{Method, StatusCode};
use serde_json::{json, Value};
use std::time::Duration;

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("http: {0}")]
    Http(#[from] reqwest::Error),
    #[error("unexpected answer {status}: {body}")]
    Unexpected { status: StatusCode, body: Value },
}

/// A response: its status and its JSON body (`Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct ApiResponse {
    pub status: StatusCode,
    pub body: Value,
}

impl ApiResponse {
    /// The `error` field of an error answer.
    pub fn error(&self) -> &str {
        self.body["error"].as_str().unwrap_or("")
    }

    /// The `error_description` field of an error answer.
    pub fn description(&self) -> &str {
        self.body["error_description"].as_str().unwrap_or("")
    }

    /// Fails unless the status is 200.
    pub fn ok(self) -> Result<Value, ClientError> {
        if self.status == StatusCode::OK {
            Ok(self.body)
        } else {
            Err(ClientError::Unexpected {
                status: self.status,
                body: self.body,
            })
        }
    }
}

#[derive(Debug, Clone)]
pub struct RestClient {
    http: reqwest::Client,
    base: String,
    prefix: String,
    token: Option<String>,
}

impl RestClient {
    /// A client for app `app_id` at `base_url` (e.g. `http://127.0.0.1:8080`).
    pub fn new(base_url: &str, app_id: &str) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(1024)
            .build()
            .expect("a client with default TLS-less settings builds");
        Self {
            http,
            base: base_url.trim_end_matches('/').to_string(),
            prefix: format!("/app-id/{app_id}"),
            token: None,
        }
    }

    /// Same server and token, `/{org}/{app}/…` path form.
    pub fn with_org_app(&self, org: &str, app: &str) -> Self {
        Self {
            prefix: format!("/{org}/{app}"),
            ..self.clone()
        }
    }

    /// Same client, authenticating with `token`.
    pub fn with_token(&self, token: impl Into<String>) -> Self {
        Self {
            token: Some(token.into()),
            ..self.clone()
        }
    }

    pub fn base_url(&self) -> &str {
        &self.base
    }

    /// The WebSocket URL of this app's client endpoint.
    pub fn ws_url(&self) -> String {
        let base = self
            .base
            .replacen("https://", "wss://", 1)
            .replacen("http://", "ws://", 1);
        format!("{base}{}/ws", self.prefix)
    }

    /// The full URL of an app-scoped path such as `/messages/users`.
    pub fn url(&self, path: &str) -> String {
        format!("{}{}{}", self.base, self.prefix, path)
    }

    /// Any request to an app-scoped path, with the client's token.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<ApiResponse, ClientError> {
        let mut req = self
            .http
            .request(method, self.url(path))
            .header("Accept", "application/json");
        if let Some(t) = &self.token {
            req = req.bearer_auth(t);
        }
        if let Some(b) = body {
            req = req.json(b);
        }
        Self::finish(req).await
    }

    /// A request built by the caller (odd headers, raw bodies).
    pub async fn raw(&self, req: reqwest::RequestBuilder) -> Result<ApiResponse, ClientError> {
        Self::finish(req).await
    }

    /// The underlying HTTP client, for requests `call` cannot express.
    pub fn http(&self) -> &reqwest::Client {
        &self.http
    }

    async fn finish(req: reqwest::RequestBuilder) -> Result<ApiResponse, ClientError> {
        let resp = req.send().await?;
        let status = resp.status();
        let bytes = resp.bytes().await?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(ApiResponse { status, body })
    }

    /// `POST …/messages/users` with a full request body.
    pub async fn send_message(&self, request: &Value) -> Result<ApiResponse, ClientError> {
        self.call(Method::POST, "/messages/users", Some(request))
            .await
    }

    /// Sends a text message and returns the message id per recipient.
    pub async fn send_text(
        &self,
        from: &str,
        to: &[&str],
        text: &str,
    ) -> Result<Vec<(String, u64)>, ClientError> {
        let body = self
            .send_message(&json!({"from": from, "to": to, "type": "txt", "body": {"msg": text}}))
            .await?
            .ok()?;
        Ok(body["data"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.parse().ok()?)))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// `POST …/token` with `client_credentials`.
    pub async fn app_token(
        &self,
        client_id: &str,
        client_secret: &str,
    ) -> Result<ApiResponse, ClientError> {
        let body = json!({"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret});
        self.call(Method::POST, "/token", Some(&body)).await
    }

    /// `POST …/token` with `password`.
    pub async fn user_token(
        &self,
        username: &str,
        password: &str,
    ) -> Result<ApiResponse, ClientError> {
        let body = json!({"grant_type": "password", "username": username, "password": password});
        self.call(Method::POST, "/token", Some(&body)).await
    }

    /// `POST …/users` for one user.
    pub async fn create_user(
        &self,
        username: &str,
        password: Option<&str>,
    ) -> Result<ApiResponse, ClientError> {
        let mut body = json!({"username": username});
        if let Some(p) = password {
            body["password"] = json!(p);
        }
        self.call(Method::POST, "/users", Some(&body)).await
    }
}
