//! Bearer-token check on every gRPC call (`authorization: Bearer <token>`).

use subtle::ConstantTimeEq;
use tonic::{service::Interceptor, Request, Status};

/// Rejects calls without the configured token; lets every call through when none is set.
#[derive(Clone)]
pub struct BearerAuth {
    expected: Option<String>,
}

impl BearerAuth {
    /// `None` disables the check (only allowed on loopback, which config validation enforces).
    pub fn new(token: Option<String>) -> Self {
        Self {
            expected: token.map(|t| format!("Bearer {t}")),
        }
    }
}

impl Interceptor for BearerAuth {
    fn call(&mut self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.expected else {
            return Ok(request);
        };
        let given = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default();
        if bool::from(given.as_bytes().ct_eq(expected.as_bytes())) {
            Ok(request)
        } else {
            Err(Status::unauthenticated(
                "missing or wrong bearer token (send \"authorization: Bearer <api.token>\")",
            ))
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn call(auth: &mut BearerAuth, header: Option<&str>) -> bool {
        let mut request = Request::new(());
        if let Some(header) = header {
            request
                .metadata_mut()
                .insert("authorization", header.parse().unwrap());
        }
        auth.call(request).is_ok()
    }

    #[test]
    fn only_the_exact_token_passes() {
        let mut auth = BearerAuth::new(Some("secret".into()));
        assert!(call(&mut auth, Some("Bearer secret")));
        assert!(!call(&mut auth, Some("Bearer secreT")));
        assert!(!call(&mut auth, Some("Bearer secret2")), "longer");
        assert!(!call(&mut auth, Some("Bearer secre")), "a prefix");
        assert!(!call(&mut auth, Some("")));
        assert!(!call(&mut auth, None));
        assert!(
            call(&mut BearerAuth::new(None), None),
            "no token configured"
        );
    }
}
