//! The operator's dashboard in a real headless Chromium (Debian's, driven over W3C WebDriver by
//! `chromedriver`): a real node A (SQLite; a browser test, not a storage test) with a second
//! node B connected to it, sharing a group and registered at A's rendezvous server.
//!
//! The page asks for the token; a wrong one returns to the prompt; the right one shows A's peer
//! id, B in the peers table, a mirror token issued from the page and then listed (and used by B
//! to register the group, which the page then lists), a chart receiving points (the relay's
//! bytes among them, with its total in the relay view), the peers table
//! sorting, and B banned and unbanned from the page. B's admin API is off, and its page says
//! so. Every wait polls the DOM with a deadline, never a fixed delay.
//!
//! Screenshots of every view go to `docs/screenshots/` with `BERTY_DASHBOARD_SCREENSHOTS=1`
//! (how the committed ones are made), else to a temporary directory. Never skipped: without
//! chromedriver the test fails (`scripts/ensure-chromium.sh` installs it).

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::{
    path::{Path, PathBuf},
    time::{Duration, Instant},
};

use berty_node::proto::node_api::{self as api, mirror_service_client::MirrorServiceClient};
use common::{
    node::http_get,
    protocol::{messages, take, within, Backend, Home, Range, TestNode},
    webdriver::{ChromeDriver, Session},
};
use serde_json::json;

/// A's admin token.
const TOKEN: &str = "dashboard-test-token";
/// Bound of every wait on the page.
const WAIT: Duration = Duration::from_secs(20);
/// Messages A writes before the browser opens.
const MESSAGES: usize = 5;

/// Where the screenshots go, and the directory to keep alive while they are written.
fn screenshot_dir() -> (PathBuf, Option<tempfile::TempDir>) {
    if std::env::var("BERTY_DASHBOARD_SCREENSHOTS").as_deref() == Ok("1") {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("docs/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        (dir, None)
    } else {
        let temp = tempfile::tempdir().unwrap();
        (temp.path().to_path_buf(), Some(temp))
    }
}

async fn shoot(browser: &Session, dir: &Path, name: &str) {
    let png = browser.screenshot().await;
    assert!(png.starts_with(b"\x89PNG"), "{name}: not a PNG");
    std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
}

/// Clicks the tab of `view` and waits until its section shows.
async fn open_view(browser: &Session, view: &str) {
    let tab = browser
        .find(&format!("#tabs button[data-view=\"{view}\"]"))
        .await;
    browser.click(&tab).await;
    browser
        .wait_for(
            &format!("the {view} view"),
            WAIT,
            &format!("return !document.querySelector('#view-{view}').hidden"),
        )
        .await;
}

/// A's page must show no error in the current view.
async fn assert_no_view_error(browser: &Session) {
    let errors = browser
        .script(
            "return [...document.querySelectorAll('.view:not([hidden]) [data-error]')]\
             .map(e => e.textContent).join('')",
            json!([]),
        )
        .await;
    assert_eq!(errors, json!(""), "the view shows an error");
}

/// A (admin API on, a sample every 200 ms) and B (bootstrapped to A, registering at A's
/// rendezvous server), sharing a group in which A wrote a few messages that B has read.
async fn two_nodes() -> (TestNode, TestNode, Vec<u8>) {
    let home = Home::new(Backend::Sqlite).await;
    let id = home.init().await;
    let mut a = TestNode::serve_with(
        home,
        id,
        &[
            ("BERTY_NODE__ADMIN__TOKEN", TOKEN),
            ("BERTY_NODE__ADMIN__STATS_PERIOD_MS", "200"),
            ("BERTY_NODE__P2P__REPLICATION", "true"),
        ],
    )
    .await;
    let a_addr = a.process.p2p_addrs[0].clone();
    let home = Home::new(Backend::Sqlite).await;
    let id = home.init().await;
    let mut b = TestNode::serve_with(
        home,
        id,
        &[
            ("BERTY_NODE__P2P__BOOTSTRAP", a_addr.as_str()),
            ("BERTY_NODE__P2P__RENDEZVOUS", a_addr.as_str()),
            ("BERTY_NODE__P2P__REPLICATION", "true"),
        ],
    )
    .await;
    let group = a.create_group().await;
    let invite = a.invite(&group).await;
    b.join(&invite, b"b").await;
    for i in 0..MESSAGES {
        a.send(&group, format!("hello {i}").as_bytes()).await;
    }
    let mut stream = messages(&mut b.client, &group, Range::default())
        .await
        .expect("subscribe");
    within("B reads A's messages", take(&mut stream, MESSAGES)).await;
    (a, b, group)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_shows_a_real_node_in_a_real_browser() {
    let started = Instant::now();
    let (dir, _keep) = screenshot_dir();
    let driver = ChromeDriver::start().await;
    let (mut a, b, group) = two_nodes().await;
    let browser = driver.session().await;

    a_wrong_token_returns_to_the_prompt(&browser, &a, &dir).await;
    the_right_token_shows_the_node(&browser, &a, &dir).await;
    the_peers_relay_and_rendezvous_views_show_b(&browser, &b, &dir).await;
    let token = issue_mirror_token(&browser, &a).await;
    register_with_mirror(&a, &b, &group, &token).await;
    browser
        .wait_for(
            "the mirrored group listed",
            WAIT,
            "return document.querySelectorAll('#mirror-groups tbody tr').length === 1",
        )
        .await;
    assert_no_view_error(&browser).await;
    shoot(&browser, &dir, "mirror").await;
    the_charts_receive_points(&browser, &mut a, &group, &dir).await;
    dark_mode_and_a_phone(&browser, &dir).await;
    ban_and_unban_from_the_page(&browser, &b).await;
    the_page_says_when_the_admin_api_is_off(&browser, &b, &dir).await;

    browser.quit().await;
    println!(
        "dashboard browser test: {:.1} s, screenshots in {}",
        started.elapsed().as_secs_f64(),
        dir.display()
    );
}

async fn a_wrong_token_returns_to_the_prompt(browser: &Session, a: &TestNode, dir: &Path) {
    browser
        .goto(&format!("http://{}/", a.process.admin_addr))
        .await;
    browser
        .wait_for(
            "the token prompt",
            WAIT,
            "return !document.querySelector('#login').hidden",
        )
        .await;
    let input = browser.find("#token").await;
    browser.type_into(&input, "not-the-token").await;
    browser.click(&browser.find("#login-submit").await).await;
    let refused = browser
        .wait_for(
            "the wrong token refused",
            WAIT,
            "const e = document.querySelector('#login-error').textContent; \
             return e.includes('401') && !document.querySelector('#login').hidden && e",
        )
        .await;
    assert!(
        refused.as_str().unwrap().contains("Wrong token"),
        "{refused}"
    );
    shoot(browser, dir, "login").await;
    let app_hidden = browser
        .script("return document.querySelector('#app').hidden", json!([]))
        .await;
    assert_eq!(app_hidden, json!(true), "no view behind a wrong token");
    let kept = browser
        .script(
            "return sessionStorage.getItem('berty-node-admin-token')",
            json!([]),
        )
        .await;
    assert_eq!(kept, json!(null), "a refused token is not kept");
}

async fn the_right_token_shows_the_node(browser: &Session, a: &TestNode, dir: &Path) {
    let input = browser.find("#token").await;
    browser.type_into(&input, TOKEN).await;
    browser.click(&browser.find("#login-submit").await).await;
    let peer_id = browser
        .wait_for(
            "A's peer id",
            WAIT,
            "return document.querySelector('#node-peer-id').textContent || null",
        )
        .await;
    assert_eq!(peer_id, json!(a.process.peer_id));
    browser
        .wait_for(
            "the storage health",
            WAIT,
            "return document.querySelector('#node-storage-health').textContent === 'up'",
        )
        .await;
    assert_no_view_error(browser).await;
    shoot(browser, dir, "node").await;
}

async fn the_peers_relay_and_rendezvous_views_show_b(browser: &Session, b: &TestNode, dir: &Path) {
    // Peers: B is connected, and replicates the group with A.
    open_view(browser, "peers").await;
    let b_row = format!("#peers-table tbody tr[data-peer=\"{}\"]", b.process.peer_id);
    browser
        .wait_for(
            "B replicating one group in the peers table",
            WAIT,
            &format!(
                "const row = document.querySelector('{b_row}'); \
                 return row !== null && row.cells[5].textContent === '1'"
            ),
        )
        .await;
    assert_no_view_error(browser).await;
    shoot(browser, dir, "peers").await;

    open_view(browser, "relay").await;
    browser
        .wait_for(
            "the relay's state",
            WAIT,
            "return document.querySelector('#relay-state').textContent !== ''",
        )
        .await;
    // The bytes relayed since start, formatted as bytes (nobody used A's relay: 0 B).
    browser
        .wait_for(
            "the bytes relayed",
            WAIT,
            "return /^[0-9.]+ (B|KiB|MiB|GiB)$/\
             .test(document.querySelector('#relay-bytes-relayed').textContent)",
        )
        .await;
    assert_no_view_error(browser).await;
    shoot(browser, dir, "relay").await;

    // Rendezvous: B registered at A.
    open_view(browser, "rendezvous").await;
    browser
        .wait_for(
            "B's registrations",
            WAIT,
            &format!(
                "return [...document.querySelectorAll('#registrations-table tbody td')]\
                 .some(td => td.title === '{}')",
                b.process.peer_id
            ),
        )
        .await;
    assert_no_view_error(browser).await;
    shoot(browser, dir, "rendezvous").await;
}

/// The point count grows as the node samples its metrics; A writes a few bursts of messages
/// meanwhile, so the charts have something to show.
async fn the_charts_receive_points(browser: &Session, a: &mut TestNode, group: &[u8], dir: &Path) {
    open_view(browser, "charts").await;
    let mut seen = browser
        .wait_for(
            "the first points",
            WAIT,
            "const n = Number(document.querySelector('#charts').dataset.points); return n > 0 && n",
        )
        .await;
    for burst in 0..3 {
        for i in 0..(10 * (burst + 1)) {
            a.send(group, format!("burst {burst}, message {i}").as_bytes())
                .await;
        }
        seen = browser
            .wait_for(
                "more points",
                WAIT,
                &format!(
                    "const n = Number(document.querySelector('#charts').dataset.points); \
                     return n > {seen} && n"
                ),
            )
            .await;
    }
    browser
        .wait_for(
            "the messages chart drawn",
            WAIT,
            "return document.querySelectorAll('#chart-messages polyline').length > 0",
        )
        .await;
    browser
        .wait_for(
            "the relay bytes chart drawn",
            WAIT,
            "return document.querySelectorAll('#chart-relay polyline').length > 0",
        )
        .await;
    assert_no_view_error(browser).await;
    shoot(browser, dir, "charts").await;
}

async fn dark_mode_and_a_phone(browser: &Session, dir: &Path) {
    browser.prefer_dark(true).await;
    open_view(browser, "peers").await;
    shoot(browser, dir, "peers-dark").await;
    browser.prefer_dark(false).await;
    browser.set_window_size(390, 844).await;
    open_view(browser, "node").await;
    let fits = browser
        .script(
            "return document.documentElement.scrollWidth <= window.innerWidth",
            json!([]),
        )
        .await;
    assert_eq!(fits, json!(true), "the node view fits a phone's width");
    shoot(browser, dir, "phone-node").await;
    browser.set_window_size(1280, 900).await;
}

/// The peers table sorts by a clicked column; B is banned (two clicks), listed as refused,
/// then unbanned from the page.
async fn ban_and_unban_from_the_page(browser: &Session, b: &TestNode) {
    open_view(browser, "peers").await;
    let ping = browser.find("#peers-table th[data-sort=\"rtt\"]").await;
    for order in ["ascending", "descending"] {
        browser.click(&ping).await;
        let sorted = browser
            .script(
                "return document.querySelector('#peers-table th[data-sort=\"rtt\"]')\
                 .getAttribute('aria-sort')",
                json!([]),
            )
            .await;
        assert_eq!(sorted, json!(order));
    }
    let peer = &b.process.peer_id;
    let ban = browser
        .find(&format!(
            "#peers-table tbody tr[data-peer=\"{peer}\"] button"
        ))
        .await;
    browser.click(&ban).await;
    browser.click(&ban).await;
    let refused = format!("#refused-table tbody tr[data-peer=\"{peer}\"]");
    browser
        .wait_for(
            "B listed as banned",
            WAIT,
            &format!("return document.querySelector('{refused}') !== null"),
        )
        .await;
    browser
        .click(&browser.find(&format!("{refused} button")).await)
        .await;
    browser
        .wait_for(
            "B's ban lifted",
            WAIT,
            &format!("return document.querySelector('{refused}') === null"),
        )
        .await;
    assert_no_view_error(browser).await;
}

/// B has no admin token: its page says the admin API is off, and how to turn it on.
async fn the_page_says_when_the_admin_api_is_off(browser: &Session, b: &TestNode, dir: &Path) {
    browser
        .goto(&format!("http://{}/", b.process.admin_addr))
        .await;
    let off = browser
        .wait_for(
            "the admin-API-off notice",
            WAIT,
            "return !document.querySelector('#off').hidden && document.querySelector('#off').textContent",
        )
        .await;
    assert!(
        off.as_str().unwrap().contains("BERTY_NODE__ADMIN__TOKEN"),
        "{off}"
    );
    shoot(browser, dir, "admin-off").await;
}

/// Issues a mirror token from the page; checks it is shown once and listed, on the page and
/// by the API; returns it.
async fn issue_mirror_token(browser: &Session, a: &TestNode) -> String {
    open_view(browser, "mirror").await;
    let label = browser.find("#mirror-label").await;
    browser.type_into(&label, "alice's phone").await;
    browser.click(&browser.find("#mirror-issue").await).await;
    let token = browser
        .wait_for(
            "the issued token",
            WAIT,
            "const v = document.querySelector('#mirror-new-token').value; \
             return v.startsWith('bnm1_') && v",
        )
        .await;
    let id = browser
        .script(
            "return document.querySelector('#mirror-issued-id').textContent",
            json!([]),
        )
        .await;
    let id = id.as_str().unwrap().to_owned();
    browser
        .wait_for(
            "the new token listed",
            WAIT,
            &format!(
                "const row = document.querySelector('#mirror-tokens tbody tr[data-id=\"{id}\"]'); \
                 return row !== null && row.cells[1].textContent === \"alice's phone\""
            ),
        )
        .await;
    let (status, body) =
        http_get(a.process.admin_addr, "/admin/v1/mirror/tokens", Some(TOKEN)).await;
    assert_eq!(status, 200, "{body}");
    let tokens: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(tokens[0]["id"], json!(id), "{body}");
    assert_eq!(tokens[0]["label"], json!("alice's phone"), "{body}");
    token.as_str().unwrap().to_owned()
}

/// B registers the group with A's mirror using the token the page issued.
async fn register_with_mirror(a: &TestNode, b: &TestNode, group: &[u8], token: &str) {
    let mut client = MirrorServiceClient::connect(format!("http://{}", b.process.grpc_addr))
        .await
        .expect("connect gRPC");
    within(
        "B registers the group with A's mirror",
        client.mirror_register(api::mirror_register::Request {
            group_pk: group.to_vec(),
            mirror_addr: a.process.p2p_addrs[0].clone(),
            token: token.to_owned(),
        }),
    )
    .await
    .expect("register with the mirror");
}
