//! Per-app rate limits (GCRA, from `governor`).
//!
//! Calls are limited per app and per endpoint family; messages per app,
//! counted one per recipient. A request asking for more messages than remain
//! takes none: `check_n` is all or nothing, so a refused request sends
//! nothing.

use chatd_core::AppLimits;
use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, RwLock};

struct AppLimiters {
    limits: AppLimits,
    calls: HashMap<&'static str, Arc<DefaultDirectRateLimiter>>,
    messages: Option<Arc<DefaultDirectRateLimiter>>,
}

impl AppLimiters {
    fn new(limits: &AppLimits) -> Self {
        Self {
            limits: limits.clone(),
            calls: HashMap::new(),
            messages: NonZeroU32::new(limits.msgs_per_min)
                .map(|n| Arc::new(RateLimiter::direct(Quota::per_minute(n)))),
        }
    }
}

#[derive(Default)]
pub struct RateLimiters {
    apps: RwLock<HashMap<i64, AppLimiters>>,
    /// Messages sent by connected devices count per user.
    users: std::sync::Mutex<HashMap<(i64, String), UserLimiter>>,
}

/// A user's limiter and the per-minute quota it was built for.
type UserLimiter = (u32, Arc<DefaultDirectRateLimiter>);

/// Users tracked by the per-user limiter before it starts over: bounds its
/// memory; forgetting a user's history only ever lets it send more.
const MAX_TRACKED_USERS: usize = 100_000;

impl RateLimiters {
    pub fn new() -> Self {
        Self::default()
    }

    /// One call to the endpoint family `route` of app `app`: `false` when
    /// over the app's calls-per-second limit.
    pub fn check_call(&self, app: i64, limits: &AppLimits, route: &'static str) -> bool {
        let Some(per_sec) = NonZeroU32::new(limits.calls_per_sec) else {
            return true;
        };
        if let Some(l) = self.read(app, limits, |a| a.calls.get(route).cloned()) {
            return l.check().is_ok();
        }
        let limiter = {
            let mut apps = self.apps.write().unwrap_or_else(|p| p.into_inner());
            let entry = apps.entry(app).or_insert_with(|| AppLimiters::new(limits));
            entry
                .calls
                .entry(route)
                .or_insert_with(|| Arc::new(RateLimiter::direct(Quota::per_second(per_sec))))
                .clone()
        };
        limiter.check().is_ok()
    }

    /// `n` messages of app `app`: `false` (and nothing consumed) when they
    /// do not all fit in the app's messages-per-minute limit.
    pub fn check_messages(&self, app: i64, limits: &AppLimits, n: u32) -> bool {
        let Some(n) = NonZeroU32::new(n) else {
            return true;
        };
        if limits.msgs_per_min == 0 {
            return true;
        }
        let limiter = match self.read(app, limits, |a| a.messages.clone()) {
            Some(l) => l,
            None => {
                let mut apps = self.apps.write().unwrap_or_else(|p| p.into_inner());
                let entry = apps.entry(app).or_insert_with(|| AppLimiters::new(limits));
                match &entry.messages {
                    Some(l) => l.clone(),
                    None => return true,
                }
            }
        };
        matches!(limiter.check_n(n), Ok(Ok(())))
    }

    /// `n` messages sent by `user` from a connected device: the app's
    /// messages-per-minute limit applied to each user on its own.
    pub fn check_user_messages(&self, app: i64, user: &str, limits: &AppLimits, n: u32) -> bool {
        let (Some(n), Some(per_min)) = (NonZeroU32::new(n), NonZeroU32::new(limits.msgs_per_min))
        else {
            return true;
        };
        let limiter = {
            let mut users = self.users.lock().unwrap_or_else(|p| p.into_inner());
            if users.len() >= MAX_TRACKED_USERS {
                users.clear();
            }
            let entry = users.entry((app, user.to_string())).or_insert_with(|| {
                (
                    per_min.get(),
                    Arc::new(RateLimiter::direct(Quota::per_minute(per_min))),
                )
            });
            if entry.0 != per_min.get() {
                *entry = (
                    per_min.get(),
                    Arc::new(RateLimiter::direct(Quota::per_minute(per_min))),
                );
            }
            entry.1.clone()
        };
        matches!(limiter.check_n(n), Ok(Ok(())))
    }

    /// Looks up the app's limiters if they exist and match the current
    /// limits; stale ones (the limits changed) are dropped.
    fn read<T>(
        &self,
        app: i64,
        limits: &AppLimits,
        f: impl FnOnce(&AppLimiters) -> Option<T>,
    ) -> Option<T> {
        {
            let apps = self.apps.read().unwrap_or_else(|p| p.into_inner());
            match apps.get(&app) {
                Some(a) if a.limits == *limits => return f(a),
                None => return None,
                Some(_) => {}
            }
        }
        let mut apps = self.apps.write().unwrap_or_else(|p| p.into_inner());
        apps.insert(app, AppLimiters::new(limits));
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(calls: u32, msgs: u32) -> AppLimits {
        AppLimits {
            calls_per_sec: calls,
            msgs_per_min: msgs,
            ..Default::default()
        }
    }

    #[test]
    fn calls_are_limited_per_app_and_route() {
        let r = RateLimiters::new();
        let l = limits(3, 0);
        let ok = (0..10).filter(|_| r.check_call(1, &l, "send")).count();
        assert_eq!(ok, 3);
        assert!(
            r.check_call(1, &l, "users"),
            "another route has its own budget"
        );
        assert!(
            r.check_call(2, &l, "send"),
            "another app has its own budget"
        );
        let unlimited = limits(0, 0);
        assert!((0..1000).all(|_| r.check_call(3, &unlimited, "send")));
    }

    #[test]
    fn messages_are_all_or_nothing() {
        let r = RateLimiters::new();
        let l = limits(0, 10);
        assert!(r.check_messages(1, &l, 6));
        assert!(!r.check_messages(1, &l, 6), "only 4 remain");
        assert!(
            r.check_messages(1, &l, 4),
            "the refused request took nothing"
        );
        assert!(!r.check_messages(1, &l, 1));
        assert!(!r.check_messages(2, &l, 11), "more than the whole budget");
    }

    #[test]
    fn changed_limits_take_effect() {
        let r = RateLimiters::new();
        assert!(!(0..5).all(|_| r.check_call(1, &limits(2, 0), "send")));
        assert!((0..5).all(|_| r.check_call(1, &limits(100, 0), "send")));
    }
}
