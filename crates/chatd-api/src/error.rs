//! The service's error JSON, and the one mapping from every layer's errors
//! to it.

use crate::envelope;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use chatd_auth::AuthError;
use chatd_pipeline::SendError;
use chatd_storage::StorageError;
use serde_json::json;

/// An error answer: status, `error`, `error_description`, and the
/// informational `exception` name.
#[derive(Debug, Clone)]
pub struct ApiError {
    pub status: StatusCode,
    pub error: &'static str,
    pub description: String,
    pub exception: &'static str,
}

impl ApiError {
    pub fn new(
        status: StatusCode,
        error: &'static str,
        description: impl Into<String>,
        exception: &'static str,
    ) -> Self {
        Self {
            status,
            error,
            description: description.into(),
            exception,
        }
    }

    pub fn invalid_request_body() -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "invalid_request_body",
            "Request body is invalid. Please check body is correct.",
            "IllegalArgumentException",
        )
    }

    pub fn illegal_argument(description: impl Into<String>) -> Self {
        Self::new(
            StatusCode::BAD_REQUEST,
            "illegal_argument",
            description,
            "IllegalArgumentException",
        )
    }

    pub fn rate_limited() -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "reach_limit",
            "This request has reached api limit",
            "EasemobReachLimitException",
        )
    }

    pub fn app_token_required() -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "forbidden_op",
            "This operation needs an app token; a user token may not perform it",
            "ForbiddenOpException",
        )
    }

    pub fn user_not_found() -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "service_resource_not_found",
            "Service resource not found",
            "UserNotFoundException",
        )
    }

    pub fn internal(what: impl std::fmt::Display) -> Self {
        tracing::error!(error = %what, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal_server_error",
            "The server met an internal error; the request was not completed",
            "InternalServerErrorException",
        )
    }

    /// An authentication failure, with the wording of the service's token
    /// error table.
    pub fn from_auth(e: AuthError) -> Self {
        match e {
            AuthError::Missing | AuthError::Expired => Self::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "Unable to authenticate due to expired access token",
                "UnauthorizedException",
            ),
            AuthError::Corrupt => Self::new(
                StatusCode::UNAUTHORIZED,
                "auth_bad_access_token",
                "Unable to authenticate due to corrupt access token",
                "org.apache.usergrid.rest.exceptions.SecurityException",
            ),
            AuthError::Unknown => Self::new(
                StatusCode::UNAUTHORIZED,
                "auth_bad_access_token",
                "Unable to authenticate",
                "org.apache.usergrid.rest.exceptions.SecurityException",
            ),
        }
    }
}

impl From<StorageError> for ApiError {
    fn from(e: StorageError) -> Self {
        ApiError::internal(e)
    }
}

impl From<SendError> for ApiError {
    fn from(e: SendError) -> Self {
        let send_error = |d: String| {
            ApiError::new(
                StatusCode::BAD_REQUEST,
                "message_send_error",
                d,
                "EasemobMessageSendException",
            )
        };
        match e {
            SendError::InvalidBody(why) => {
                tracing::debug!(%why, "invalid send request");
                ApiError::invalid_request_body()
            }
            SendError::RateLimited => ApiError::new(
                StatusCode::FORBIDDEN,
                "message_send_error",
                "message send reach limit",
                "EasemobMessageSendException",
            ),
            SendError::Storage(e) => e.into(),
            other => send_error(other.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = json!({
            "error": self.error,
            "exception": self.exception,
            "timestamp": chatd_core::clock::now_ms(),
            "duration": envelope::elapsed_ms(),
            "error_description": self.description,
        });
        (self.status, Json(body)).into_response()
    }
}
