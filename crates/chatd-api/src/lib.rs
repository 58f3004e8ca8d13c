//! chatd HTTP API.
//!
//! Every app-scoped route is served under both path forms of the hosted
//! service, `/app-id/{app_id}/…` and `/{org_name}/{app_name}/…`: a
//! middleware resolves the app from either and hands it to the handlers.
//! Failures of every layer become [`error::ApiError`], rendered once as the
//! service's error JSON.

pub mod apps;
pub mod auth;
pub mod body;
mod direct;
pub mod envelope;
pub mod error;
mod observe;
pub mod routes;
pub mod state;
mod trailing_slash;

pub use apps::AppRegistry;
pub use chatd_web::DefaultAppInfo;
pub use direct::Api;
pub use state::ApiState;

use axum::middleware::{from_fn, from_fn_with_state};
use axum::routing::{delete, get, post};
use axum::Router;
use std::sync::Arc;

/// The routes that exist once per app.
fn app_routes() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/token", post(routes::token::issue))
        .route("/chatfiles", post(routes::chatfiles::upload))
        .route("/chatfiles/{uuid}", get(routes::chatfiles::download))
        .route("/messages/users", post(routes::messages::send_to_users))
        .route("/users", post(routes::users::create))
        .route(
            "/users/{username}",
            get(routes::users::get_one).delete(routes::users::delete_one),
        )
        .route(
            "/users/{username}/offline_msg_count",
            get(routes::users::offline_msg_count),
        )
        .route(
            "/users/{username}/offline_msg_status/{msg_id}",
            get(routes::presence::offline_msg_status),
        )
        .route("/users/{username}/status", get(routes::presence::status))
        .route("/users/batch/status", post(routes::presence::batch_status))
        .route(
            "/users/{username}/resources",
            get(routes::presence::resources),
        )
        .route(
            "/users/{username}/disconnect",
            get(routes::presence::disconnect_user),
        )
        .route(
            "/users/{username}/disconnect/{resource}",
            delete(routes::presence::disconnect_device),
        )
        .route("/users/{username}/history", get(routes::history::history))
        .route(
            "/users/{username}/user_channels",
            get(routes::history::conversations),
        )
        .route(
            "/users/{username}/user_channel",
            delete(routes::history::delete_conversation),
        )
        .route("/ws", get(routes::ws::connect))
        // The official client SDKs' REST calls (routes/sdk.rs).
        .route(
            "/users/{username}/messageroaming",
            post(routes::sdk::message_roaming),
        )
        .route(
            "/sdk/user/{username}/user_channels/list",
            get(routes::sdk::conversations),
        )
        .route(
            "/sdk/users/{username}/token/expires",
            get(routes::sdk::token_expires),
        )
}

/// CORS for browsers (the Web SDK calls the REST API from pages of other
/// origins): any origin, the requested method and headers (a wildcard
/// would not cover `Authorization`). No cookies are involved: tokens travel
/// in headers.
fn cors() -> tower_http::cors::CorsLayer {
    use tower_http::cors::{AllowHeaders, AllowMethods, Any, CorsLayer};
    CorsLayer::new()
        .allow_origin(Any)
        .allow_methods(AllowMethods::mirror_request())
        .allow_headers(AllowHeaders::mirror_request())
        .max_age(std::time::Duration::from_secs(86_400))
}

/// The whole HTTP API, as served: [`router`], with sends taken straight to
/// their handler (`direct.rs`), and a path's trailing slashes dropped first
/// (`trailing_slash.rs`).
pub fn service(state: Arc<ApiState>, web: DefaultAppInfo) -> Api {
    Api::new(router(state.clone(), web), state)
}

/// The whole HTTP API as one router.
pub fn router(state: Arc<ApiState>, web: DefaultAppInfo) -> Router {
    let by_id = app_routes().route_layer(from_fn_with_state(state.clone(), apps::resolve_by_id));
    let by_name =
        app_routes().route_layer(from_fn_with_state(state.clone(), apps::resolve_by_name));
    Router::new()
        .route("/health", get(routes::system::health))
        .route("/metrics", get(routes::system::metrics))
        // msync, the official client SDKs' protocol, at the root as they
        // connect (routes/msync.rs).
        .route("/websocket", get(routes::msync::connect))
        .merge(chatd_web::router(web))
        .nest("/app-id/{app_id}", by_id)
        .nest("/{org_name}/{app_name}", by_name)
        .fallback(routes::system::not_found)
        .method_not_allowed_fallback(routes::system::method_not_allowed)
        .layer(from_fn(observe::observe))
        .layer(cors())
        .with_state(state)
}
