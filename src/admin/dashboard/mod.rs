//! The operator's dashboard: one static page, its style sheet, script and icon, embedded in
//! the binary and served on the admin port without authentication (they hold no data; every
//! figure comes from the token-protected `/admin/v1/` routes, called by the page with the
//! token the operator types, kept in `sessionStorage`). `docs/dashboard.md` describes the
//! views.
//!
//! Every answer carries a strict `Content-Security-Policy` (only this origin's script, style,
//! images and API; no inline script or style, no framing, no form posting anywhere) and
//! `Cache-Control: no-cache`, so a new build's page is never mixed with an old script.

use actix_web::{http::header, web, HttpResponse};

/// The policy every dashboard answer carries.
pub const CONTENT_SECURITY_POLICY: &str = "default-src 'self'; base-uri 'none'; \
     form-action 'none'; frame-ancestors 'none'; object-src 'none'";

/// One embedded file and its content type.
struct Asset {
    body: &'static [u8],
    content_type: &'static str,
}

const INDEX: Asset = Asset {
    body: include_bytes!("index.html"),
    content_type: "text/html; charset=utf-8",
};
const STYLE: Asset = Asset {
    body: include_bytes!("app.css"),
    content_type: "text/css; charset=utf-8",
};
const SCRIPT: Asset = Asset {
    body: include_bytes!("app.js"),
    content_type: "text/javascript; charset=utf-8",
};
const CHARTS: Asset = Asset {
    body: include_bytes!("charts.js"),
    content_type: "text/javascript; charset=utf-8",
};
const ICON: Asset = Asset {
    body: include_bytes!("icon.svg"),
    content_type: "image/svg+xml",
};

/// Registers `/` and `/dashboard/{app.css, app.js, charts.js, icon.svg}`, for `GET` and
/// `HEAD`.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/", get_or_head().to(|| async { serve(&INDEX) }))
        .route(
            "/dashboard/app.css",
            get_or_head().to(|| async { serve(&STYLE) }),
        )
        .route(
            "/dashboard/app.js",
            get_or_head().to(|| async { serve(&SCRIPT) }),
        )
        .route(
            "/dashboard/charts.js",
            get_or_head().to(|| async { serve(&CHARTS) }),
        )
        .route(
            "/dashboard/icon.svg",
            get_or_head().to(|| async { serve(&ICON) }),
        );
}

fn get_or_head() -> actix_web::Route {
    web::route().guard(actix_web::guard::Any(actix_web::guard::Get()).or(actix_web::guard::Head()))
}

fn serve(asset: &Asset) -> HttpResponse {
    HttpResponse::Ok()
        .insert_header((header::CONTENT_TYPE, asset.content_type))
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header((header::CONTENT_SECURITY_POLICY, CONTENT_SECURITY_POLICY))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        .insert_header((header::REFERRER_POLICY, "no-referrer"))
        .body(asset.body)
}

#[cfg(test)]
mod tests {
    use actix_web::{body::to_bytes, test as web_test, App};

    use super::*;

    #[actix_web::test]
    async fn the_page_and_its_files_are_served_with_their_types_and_policy() {
        let app = web_test::init_service(App::new().configure(configure)).await;
        for (path, content_type) in [
            ("/", "text/html; charset=utf-8"),
            ("/dashboard/app.css", "text/css; charset=utf-8"),
            ("/dashboard/app.js", "text/javascript; charset=utf-8"),
            ("/dashboard/charts.js", "text/javascript; charset=utf-8"),
            ("/dashboard/icon.svg", "image/svg+xml"),
        ] {
            let response =
                web_test::call_service(&app, web_test::TestRequest::get().uri(path).to_request())
                    .await;
            assert_eq!(response.status(), 200, "{path}");
            let header = |name| {
                response
                    .headers()
                    .get(name)
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned)
            };
            assert_eq!(
                header(header::CONTENT_TYPE).unwrap(),
                content_type,
                "{path}"
            );
            assert_eq!(header(header::CACHE_CONTROL).unwrap(), "no-cache", "{path}");
            assert_eq!(
                header(header::CONTENT_SECURITY_POLICY).unwrap(),
                CONTENT_SECURITY_POLICY,
                "{path}"
            );
            let body = to_bytes(response.into_body()).await.unwrap();
            assert!(!body.is_empty(), "{path}");
        }
    }

    #[test]
    fn the_page_loads_nothing_from_elsewhere_and_runs_no_inline_script() {
        let page = std::str::from_utf8(INDEX.body).unwrap();
        for needle in [
            "http://",
            "https://",
            "<style",
            "style=",
            "onclick",
            "javascript:",
        ] {
            assert!(!page.contains(needle), "index.html holds {needle}");
        }
        assert!(page.contains(r#"<script src="/dashboard/app.js" defer></script>"#));
        assert_eq!(
            page.matches("<script").count(),
            2,
            "two scripts, from files"
        );
        for script in [SCRIPT.body, CHARTS.body] {
            let script = std::str::from_utf8(script).unwrap();
            for needle in ["innerHTML", "eval(", "localStorage", "new Function"] {
                assert!(!script.contains(needle), "a script uses {needle}");
            }
        }
    }
}
