//! ListInstitutions against each provider's mock: the whole catalogue paged through with signed
//! tokens, searched by name, and kept for the provider's TTL so that paging, repeated queries and
//! a user's typing do not reach the provider each time.

use crate::support::database::{Backend, TestDatabase};
use crate::support::server::{QUICK, SECRET, TestApp, Upstream};
use linkgate::crypto::Sealer;
use linkgate::pb;
use linkgate_mocks::MockServer;
use std::collections::{BTreeMap, HashSet};
use std::time::Duration;

/// A server whose only provider is one HTTP provider's mock.
struct Catalogue {
    app: TestApp,
    mock: MockServer,
    _database: TestDatabase,
}

impl Catalogue {
    async fn start(provider: &'static str, mock: MockServer, overrides: &[(&'static str, &str)]) -> Self {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let database = TestDatabase::create(Backend::Sqlite).await;
        let key = Sealer::generate_key();
        let base_url = mock.base_url();
        let upstream = Upstream {
            database_url: &database.url,
            encryption_key: &key,
            provider,
            base_url: &base_url,
            client_secret: SECRET,
            timing: &QUICK,
        };
        let redirect = [("--vumi-redirect-id", "0b6f3c1e-9a2d-4c5b-8e7f-112233445566")];
        let flags: Vec<_> = redirect.into_iter().chain(overrides.iter().copied()).collect();
        let app = TestApp::start(upstream.settings(&flags), None, None).await;
        Self { app, mock, _database: database }
    }

    /// One page of the provider's institutions.
    async fn page(
        &mut self,
        provider: &str,
        query: &str,
        page_size: i32,
        page_token: &str,
    ) -> Result<pb::ListInstitutionsResponse, tonic::Status> {
        let request = pb::ListInstitutionsRequest {
            provider: provider.into(),
            query: query.into(),
            page_size,
            page_token: page_token.into(),
        };
        self.app.link.list_institutions(request).await.map(tonic::Response::into_inner)
    }

    /// Every institution matching `query`, page by page.
    async fn all(&mut self, provider: &str, query: &str, page_size: i32) -> Vec<pb::Institution> {
        let mut all = Vec::new();
        let mut token = String::new();
        loop {
            let page = self.page(provider, query, page_size, &token).await.expect("a page");
            assert!(page.institutions.len() <= page_size as usize, "at most a page");
            all.extend(page.institutions);
            if page.next_page_token.is_empty() {
                return all;
            }
            token = page.next_page_token;
        }
    }

    /// A link session at `institution_id`, which linkgate looks up first.
    async fn create_session(&mut self, provider: &str, institution_id: &str) -> Result<pb::LinkSession, tonic::Status> {
        let request = pb::CreateLinkSessionRequest {
            provider: provider.into(),
            external_user_id: "user-1".into(),
            institution_id: institution_id.into(),
            ..Default::default()
        };
        self.app.link.create_link_session(request).await.map(|r| r.into_inner().link_session.unwrap())
    }

    /// Calls the mock received on `path`.
    async fn calls(&self, path: &str) -> u64 {
        let report: serde_json::Value =
            reqwest::get(format!("{}/calls", self.mock.admin_url())).await.unwrap().json().await.unwrap();
        let calls: BTreeMap<String, u64> = serde_json::from_value(report["calls"].clone()).unwrap();
        calls.get(path).copied().unwrap_or(0)
    }
}

/// Asserts `listed` is in name order with each id once.
#[track_caller]
fn assert_ordered_and_unique(listed: &[pb::Institution]) {
    assert!(listed.is_sorted_by(|a, b| (&a.name, &a.id) <= (&b.name, &b.id)), "ordered by name, then id");
    assert_eq!(listed.iter().map(|i| &i.id).collect::<HashSet<_>>().len(), listed.len(), "each id once");
}

#[tokio::test]
async fn moneykit_pages_through_its_whole_catalogue_from_one_cached_crawl() {
    let mock = linkgate_mocks::moneykit::spawn("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let mut catalogue = Catalogue::start("moneykit", mock, &[]).await;

    let every = catalogue.all("moneykit", "", 500).await;

    assert_eq!(every.len(), 3 + linkgate_mocks::moneykit::CATALOGUE_EXTRA, "every institution, not the featured");
    assert_ordered_and_unique(&every);
    assert!(every.iter().any(|i| i.id == "chase") && every.iter().any(|i| i.name == "Valley Savings Bank of York"));
    // 2,400 institutions at MoneyKit's 1,000 a page, fetched once for the five pages above.
    assert_eq!(catalogue.calls("/institutions").await, 3);

    // A user types a name: every keystroke is answered from the catalogue.
    for typed in ["w", "we", "wes", "west", "westm", "WESTMARK CREDIT"] {
        let found = catalogue.all("moneykit", typed, 100).await;
        assert!(!found.is_empty(), "{typed:?} finds institutions");
        let typed = typed.to_lowercase();
        assert!(found.iter().all(|i| i.name.to_lowercase().contains(&typed)), "only names containing {typed:?}");
        assert_ordered_and_unique(&found);
    }
    let found = catalogue.all("moneykit", "valley credit union of york", 100).await;
    assert_eq!(found.iter().map(|i| i.name.as_str()).collect::<Vec<_>>(), ["Valley Credit Union of York"]);
    assert_eq!(catalogue.calls("/institutions").await, 3, "no keystroke reached MoneyKit");

    // A page token belongs to its query, and only linkgate can make one.
    let first = catalogue.page("moneykit", "bank", 10, "").await.unwrap();
    let status = catalogue.page("moneykit", "union", 10, &first.next_page_token).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
    let mut forged = first.next_page_token.clone();
    forged.insert(4, 'x');
    let status = catalogue.page("moneykit", "bank", 10, &forged).await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::InvalidArgument);
}

#[tokio::test]
async fn deck_searches_its_sources_once_per_three_letter_term() {
    let mock = linkgate_mocks::deck::spawn("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let mut catalogue = Catalogue::start("deck", mock, &[]).await;

    // Shorter than Deck's three-character search: its most common sources, filtered.
    let common = catalogue.all("deck", "", 100).await;
    assert_eq!(common.len(), linkgate_mocks::deck::MOST_COMMON);
    let short = catalogue.all("deck", "wa", 100).await;
    assert!(short.iter().all(|i| common.contains(i) && i.name.to_lowercase().contains("wa")), "{short:?}");
    assert_eq!(catalogue.calls("/link/sources").await, 1);

    // A user types "water": one search for "wat" serves every keystroke after it.
    for typed in ["wat", "wate", "water", "Water Of"] {
        catalogue.all("deck", typed, 50).await;
    }
    assert_eq!(catalogue.calls("/link/sources").await, 2, "one search for the typing");
    let water = catalogue.all("deck", "water", 50).await;
    // Every source in Deck's catalogue whose name has "water" in it (Clearwater's too), not only
    // the most common, over several pages.
    assert!(water.len() > 150 && water.iter().any(|i| i.name == "Thames Water"), "{} found", water.len());
    assert!(water.iter().all(|i| i.name.to_lowercase().contains("water")));
    assert_ordered_and_unique(&water);
    assert_eq!(catalogue.calls("/link/sources").await, 2, "paging is answered from the kept search");

    // A source found by search is linkable by its id (looked up once, then kept).
    let found = &water[7];
    let session = catalogue.create_session("deck", &found.id).await.expect("a searched source links");
    assert_eq!(session.institution_id, found.id);
}

#[tokio::test]
async fn vumi_lists_the_apps_entities_and_fetches_them_again_after_the_ttl() {
    let mock = linkgate_mocks::vumi::spawn("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    // A TTL long enough that a slow machine reads every page of one listing within it.
    let mut catalogue = Catalogue::start("vumi", mock, &[("--vumi-institutions-ttl", "2s")]).await;

    let entities = catalogue.all("vumi", "", 10).await;

    assert_eq!(entities.len(), linkgate_mocks::vumi::ENTITIES.len(), "every entity the app exposes");
    assert_ordered_and_unique(&entities);
    let santander = entities.iter().find(|i| i.id == "santander").expect("Santander is an entity");
    assert_eq!((santander.name.as_str(), santander.kind()), ("Banco Santander", pb::InstitutionKind::Bank));
    let degiro = entities.iter().find(|i| i.id == "degiro").expect("DEGIRO is an entity");
    assert_eq!(degiro.kind(), pb::InstitutionKind::Broker);
    assert_eq!(degiro.country_codes, ["ES"]);
    let banco: Vec<String> = catalogue.all("vumi", "banco", 10).await.into_iter().map(|i| i.id).collect();
    assert_eq!(banco, ["sabadell", "santander", "evo", "renta4", "unicaja"]);
    assert_eq!(catalogue.calls("/queries/entities").await, 1, "four pages and a search, one fetch");

    // An entity the app does not expose is unknown.
    let status = catalogue.create_session("vumi", "no-such-bank").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::NotFound, "{status:?}");

    tokio::time::sleep(Duration::from_millis(2100)).await;
    catalogue.all("vumi", "", 100).await;
    assert_eq!(catalogue.calls("/queries/entities").await, 2, "fetched again once the TTL ran out");

    // The entity list's path is inferred: should Vumi not know it, listing is unsupported and an
    // entity-like id still goes to the widget, which knows the app's entities.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let fault = serde_json::json!({"kind": "status", "status": 404, "path": "/queries/entities", "times": 10});
    let response = reqwest::Client::new().post(format!("{}/faults", catalogue.mock.admin_url())).json(&fault).send();
    assert!(response.await.unwrap().status().is_success());
    let status = catalogue.page("vumi", "", 10, "").await.unwrap_err();
    assert_eq!(status.code(), tonic::Code::FailedPrecondition, "{status:?}");
    let session = catalogue.create_session("vumi", "santander").await;
    assert!(session.is_ok(), "{session:?}");
}

#[tokio::test]
async fn reads_answered_from_the_kept_catalogue_do_not_hide_a_degraded_provider() {
    let mock = linkgate_mocks::deck::spawn("127.0.0.1:0".parse().unwrap(), Default::default()).await.unwrap();
    let mut catalogue = Catalogue::start("deck", mock, &[]).await;
    catalogue.all("deck", "", 100).await;
    let fault = serde_json::json!({"kind": "status", "status": 503, "times": 100, "path": "/link/token/create"});
    let response = reqwest::Client::new().post(format!("{}/faults", catalogue.mock.admin_url())).json(&fault).send();
    assert!(response.await.unwrap().status().is_success());
    for _ in 0..3 {
        catalogue.create_session("deck", linkgate_mocks::deck::NATIONAL_GRID).await.expect_err("Deck is down");
    }

    // A user types a name: every keystroke is answered from the kept sources.
    for typed in ["n", "na", "nat", "nati", "natio", "nation", "nationa", "national", "national ", "national g"] {
        catalogue.page("deck", typed, 10, "").await.expect("answered from memory");
    }

    let providers = catalogue.app.link.list_providers(pb::ListProvidersRequest {}).await.unwrap().into_inner();
    let deck = providers.providers.iter().find(|p| p.id == "deck").expect("Deck is listed");
    assert_eq!(deck.health(), pb::ProviderHealth::Degraded, "the failed calls still count");
}
