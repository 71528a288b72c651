//! Public tokens: listed while exchangeable, claimed for exchange exactly once, given back when
//! refused.

use super::*;

async fn a_succeeded_session_lists_its_public_token(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let (succeeded, token) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    assert_eq!(store.get_link_session(tenant, session.id).await.unwrap(), Some(succeeded.clone()));

    let page = store.list_public_tokens(tenant, None, None, now(), &first_page(10)).await.unwrap();
    assert!(page.next.is_none());
    let [listed] = page.items.as_slice() else { panic!("expected one token, got {:?}", page.items) };
    assert_eq!(listed.id, token.id);
    assert_eq!(listed.provider, token.provider);
    assert_eq!(Some(&listed.token_sealed), succeeded.public_token.as_ref(), "the token sealed on the session");
    assert_eq!(listed.link_session_id, session.id);
    assert_eq!(listed.institution_id, token.institution_id);
    assert_eq!(listed.external_user_id, "user-1");
    assert_eq!(listed.created_at, succeeded.updated_at);
    assert_eq!(listed.expires_at, token.expires_at);

    let count = async |provider: Option<&str>, user: Option<&str>| {
        store.list_public_tokens(tenant, provider, user, now(), &first_page(10)).await.unwrap().items.len()
    };
    assert_eq!(count(Some(PROVIDER), None).await, 1);
    assert_eq!(count(Some("vumi"), None).await, 0, "filtered by provider");
    assert_eq!(count(None, Some("user-1")).await, 1);
    assert_eq!(count(None, Some("user-2")).await, 0, "filtered by end user");
}
conformance!(a_succeeded_session_lists_its_public_token);

async fn expired_foreign_and_exchanged_tokens_are_not_listed(store: Arc<dyn Store>) {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let t0 = now();
    let expiring = create_session(&*store, tenant, "user-1").await;
    let (_, expiring_token) = succeed(&*store, &expiring, t0 + Duration::minutes(10)).await;
    let exchanged = create_session(&*store, tenant, "user-1").await;
    let (_, exchanged_token) = succeed(&*store, &exchanged, t0 + Duration::minutes(30)).await;
    let foreign = create_session(&*store, other_tenant, "user-1").await;
    let (_, foreign_token) = succeed(&*store, &foreign, t0 + Duration::minutes(30)).await;
    let claim_id = won_claim(&*store, tenant, PROVIDER, &exchanged_token.token_hash, t0).await;
    let claim = TokenClaim { token_hash: &exchanged_token.token_hash, claim_id };
    let exchanged = connection(tenant, "user-1", PROVIDER);
    assert!(store.create_connection(&exchanged, b"handle", b"ref", claim, t0).await.unwrap(), "the claim holds");

    let listed = async |tenant: TenantId, at: Timestamp| {
        let page = store.list_public_tokens(tenant, None, None, at, &first_page(10)).await.unwrap();
        ids(&page.items, |t| t.id)
    };
    assert_eq!(listed(tenant, t0).await, vec![expiring_token.id], "neither exchanged nor another tenant's");
    assert_eq!(listed(tenant, t0 + Duration::minutes(11)).await, Vec::<Uuid>::new(), "expired");
    assert_eq!(listed(other_tenant, t0).await, vec![foreign_token.id]);
}
conformance!(expired_foreign_and_exchanged_tokens_are_not_listed);

async fn public_tokens_page_newest_first_without_gaps_or_repeats(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let mut issued = Vec::new();
    for _ in 0..5 {
        let session = create_session(&*store, tenant, "user-1").await;
        issued.push(succeed(&*store, &session, now() + Duration::minutes(30)).await.1.id);
    }
    issued.reverse();
    let at = now();

    for size in [1, 2, 5] {
        let (tokens, pages) =
            all_pages(size, async |page| store.list_public_tokens(tenant, None, None, at, &page).await.unwrap()).await;
        assert_eq!(ids(&tokens, |t| t.id), issued, "pages of {size}");
        assert_eq!(pages, issued.len().div_ceil(size), "pages of {size}");
    }
}
conformance!(public_tokens_page_newest_first_without_gaps_or_repeats);

async fn claiming_an_issued_token_wins_and_names_its_link_session(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, token) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    let at = now();

    let claim = store.claim_public_token(tenant, PROVIDER, &token.token_hash, at, at + Duration::seconds(30)).await;
    let stored = store.get_link_session(tenant, session.id).await.unwrap().map(Box::new);
    let Claim::Won { link_session, .. } = claim.unwrap() else { panic!("the claim is won") };
    assert_eq!(link_session, stored, "the session as stored, read with the claim");
    let listed = store.list_public_tokens(tenant, None, None, at, &first_page(10)).await.unwrap();
    assert!(listed.items.is_empty(), "a token being exchanged is still listed");
}
conformance!(claiming_an_issued_token_wins_and_names_its_link_session);

/// The link session a won claim names; `None` when the claim was not won.
fn won_by(claim: Claim) -> Option<Option<Uuid>> {
    match claim {
        Claim::Won { link_session, .. } => Some(link_session.map(|session| session.id)),
        _ => None,
    }
}

async fn claiming_a_token_twice_leaves_the_second_caller_busy(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, token) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    let t0 = now();
    let claim = async |at: Timestamp| {
        store.claim_public_token(tenant, PROVIDER, &token.token_hash, at, at + Duration::seconds(30)).await.unwrap()
    };

    assert_eq!(won_by(claim(t0).await), Some(Some(session.id)));
    assert_eq!(claim(t0).await, Claim::Busy);
    assert_eq!(claim(t0 + Duration::seconds(29)).await, Claim::Busy, "the first claim still holds");
}
conformance!(claiming_a_token_twice_leaves_the_second_caller_busy);

async fn a_lapsed_claim_can_be_taken_over(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, token) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    let never_seen = token_hash();
    let t0 = now();
    let claim = async |hash: &[u8], at: Timestamp| {
        store.claim_public_token(tenant, PROVIDER, hash, at, at + Duration::seconds(30)).await.unwrap()
    };

    assert_eq!(won_by(claim(&token.token_hash, t0).await), Some(Some(session.id)));
    let later = t0 + Duration::seconds(31);
    assert_eq!(won_by(claim(&token.token_hash, later).await), Some(Some(session.id)));
    assert_eq!(claim(&token.token_hash, later).await, Claim::Busy, "the new claim holds");

    assert_eq!(won_by(claim(&never_seen, t0).await), Some(None));
    assert_eq!(won_by(claim(&never_seen, later).await), Some(None), "a never-seen token too");
    assert_eq!(claim(&never_seen, later).await, Claim::Busy);
}
conformance!(a_lapsed_claim_can_be_taken_over);

async fn another_tenant_claiming_a_token_gets_foreign(store: Arc<dyn Store>) {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, issued) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    let (never_seen, exchanged) = (token_hash(), token_hash());
    let at = now();
    let claim = async |tenant: TenantId, hash: &[u8]| {
        store.claim_public_token(tenant, PROVIDER, hash, at, at + Duration::seconds(30)).await.unwrap()
    };

    assert_eq!(claim(other_tenant, &issued.token_hash).await, Claim::Foreign, "an issued token");
    assert_eq!(won_by(claim(tenant, &issued.token_hash).await), Some(Some(session.id)));
    assert_eq!(claim(other_tenant, &issued.token_hash).await, Claim::Foreign, "a claimed token");

    assert_eq!(won_by(claim(tenant, &never_seen).await), Some(None));
    assert_eq!(claim(other_tenant, &never_seen).await, Claim::Foreign, "a token first seen at exchange");

    let claim_id = won_claim(&*store, tenant, PROVIDER, &exchanged, at).await;
    let held = TokenClaim { token_hash: &exchanged, claim_id };
    store.create_connection(&connection(tenant, "user-1", PROVIDER), b"handle", b"ref", held, at).await.unwrap();
    assert_eq!(claim(other_tenant, &exchanged).await, Claim::Foreign, "an exchanged token names no connection");
}
conformance!(another_tenant_claiming_a_token_gets_foreign);

async fn concurrent_claims_of_one_token_have_exactly_one_winner(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, issued) = succeed(&*store, &session, now() + Duration::minutes(30)).await;

    for (hash, what) in [(issued.token_hash, "an issued token"), (token_hash(), "a never-seen token")] {
        let at = now();
        let claims = futures::future::join_all(
            (0..8).map(|_| store.claim_public_token(tenant, PROVIDER, &hash, at, at + Duration::seconds(30))),
        )
        .await;
        let claims: Vec<Claim> = claims.into_iter().map(|claim| claim.expect("claim answers")).collect();
        let winners = claims.iter().filter(|claim| matches!(claim, Claim::Won { .. })).count();
        assert_eq!(winners, 1, "{what}: {claims:?}");
        assert!(claims.iter().all(|claim| matches!(claim, Claim::Won { .. } | Claim::Busy)), "{what}: {claims:?}");
    }
}
conformance!(concurrent_claims_of_one_token_have_exactly_one_winner);

async fn an_exchanged_token_claims_as_exchanged_for_good(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, token) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    let t0 = now();
    let claim = async |at: Timestamp| {
        store.claim_public_token(tenant, PROVIDER, &token.token_hash, at, at + Duration::seconds(30)).await.unwrap()
    };
    let held = TokenClaim {
        token_hash: &token.token_hash,
        claim_id: won_claim(&*store, tenant, PROVIDER, &token.token_hash, t0).await,
    };
    let mut exchanged = connection(tenant, "user-1", PROVIDER);
    exchanged.link_session_id = Some(session.id);
    assert!(store.create_connection(&exchanged, b"handle", b"ref", held, t0).await.unwrap(), "the claim holds");

    let expected = Claim::Exchanged { connection_id: exchanged.id };
    assert_eq!(claim(t0).await, expected);
    assert_eq!(claim(t0 + Duration::minutes(5)).await, expected, "after the claim lapsed");
    assert_eq!(claim(t0 + Duration::hours(2)).await, expected, "after the token's exchange window");
    store.release_public_token(tenant, PROVIDER, held).await.unwrap();
    assert_eq!(claim(t0).await, expected, "a release after the exchange");
    assert!(!store.renew_public_token_claim(tenant, PROVIDER, held, t0 + Duration::minutes(1)).await.unwrap());
    assert_eq!(claim(t0).await, expected, "a renewal after the exchange");
    assert!(store.list_public_tokens(tenant, None, None, t0, &first_page(10)).await.unwrap().items.is_empty());
}
conformance!(an_exchanged_token_claims_as_exchanged_for_good);

async fn an_expired_token_claims_as_expired(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let expires_at = now() + Duration::minutes(10);
    let (_, token) = succeed(&*store, &session, expires_at).await;

    let at = expires_at + Duration::seconds(1);
    let claim = store.claim_public_token(tenant, PROVIDER, &token.token_hash, at, at + Duration::seconds(30)).await;
    assert_eq!(claim.unwrap(), Claim::Expired);
}
conformance!(an_expired_token_claims_as_expired);

async fn a_lapsed_claim_on_an_expired_token_claims_as_expired(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let expires_at = now() + Duration::minutes(10);
    let (_, token) = succeed(&*store, &session, expires_at).await;
    let claim = async |at: Timestamp| {
        store.claim_public_token(tenant, PROVIDER, &token.token_hash, at, at + Duration::seconds(30)).await.unwrap()
    };
    // A replica claims the token just before it expires, then crashes without releasing it.
    let claimed_at = expires_at - Duration::seconds(5);
    assert_eq!(won_by(claim(claimed_at).await), Some(Some(session.id)));

    // Nobody holds an unexpired claim any more and the window has passed: the caller must
    // learn the token expired, not wait for an exchange that will never finish.
    assert_eq!(claim(claimed_at + Duration::minutes(1)).await, Claim::Expired);
}
conformance!(a_lapsed_claim_on_an_expired_token_claims_as_expired);

async fn a_never_seen_token_is_won_and_forgotten_on_release(store: Arc<dyn Store>) {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let hash = token_hash();
    let at = now();
    let claim = async |tenant: TenantId| {
        store.claim_public_token(tenant, PROVIDER, &hash, at, at + Duration::seconds(30)).await.unwrap()
    };

    let first = TokenClaim { token_hash: &hash, claim_id: won_claim(&*store, tenant, PROVIDER, &hash, at).await };
    assert_eq!(claim(tenant).await, Claim::Busy);
    assert!(store.list_public_tokens(tenant, None, None, at, &first_page(10)).await.unwrap().items.is_empty());
    store.release_public_token(tenant, PROVIDER, first).await.unwrap();
    let second = TokenClaim { token_hash: &hash, claim_id: won_claim(&*store, tenant, PROVIDER, &hash, at).await };
    assert!(store.list_public_tokens(tenant, None, None, at, &first_page(10)).await.unwrap().items.is_empty());

    // Forgotten, not merely freed: no tenant owns it any more, so the next claimer may be anyone.
    store.release_public_token(tenant, PROVIDER, second).await.unwrap();
    assert_eq!(won_by(claim(other_tenant).await), Some(None));
}
conformance!(a_never_seen_token_is_won_and_forgotten_on_release);

async fn releasing_an_issued_token_makes_it_claimable_and_listable_again(store: Arc<dyn Store>) {
    let (tenant, other_tenant) = (new_tenant(), new_tenant());
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, token) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    let at = now();
    let claim = async || {
        store.claim_public_token(tenant, PROVIDER, &token.token_hash, at, at + Duration::seconds(30)).await.unwrap()
    };
    let listed = async || {
        let page = store.list_public_tokens(tenant, None, None, at, &first_page(10)).await.unwrap();
        ids(&page.items, |t| t.id)
    };

    let Claim::Won { claim_id, .. } = claim().await else { panic!("the claim is won") };
    let held = TokenClaim { token_hash: &token.token_hash, claim_id };
    store.release_public_token(other_tenant, PROVIDER, held).await.unwrap();
    assert_eq!(claim().await, Claim::Busy, "another tenant's release freed the claim");
    assert_eq!(listed().await, Vec::<Uuid>::new());

    store.release_public_token(tenant, PROVIDER, held).await.unwrap();
    assert_eq!(listed().await, vec![token.id], "listed again");
    assert_eq!(won_by(claim().await), Some(Some(session.id)), "claimable again");
}
conformance!(releasing_an_issued_token_makes_it_claimable_and_listable_again);

async fn a_claim_that_lapsed_and_was_taken_over_can_neither_renew_release_nor_record(store: Arc<dyn Store>) {
    let tenant = new_tenant();
    let session = create_session(&*store, tenant, "user-1").await;
    let (_, token) = succeed(&*store, &session, now() + Duration::minutes(30)).await;
    let hash = &token.token_hash;
    let t0 = now();
    let first = TokenClaim { token_hash: hash, claim_id: won_claim(&*store, tenant, PROVIDER, hash, t0).await };
    let lease = |at: Timestamp| at + Duration::seconds(30);

    // Renewed while held: the lease moves on, so a claim at the first lease's end finds it held.
    assert!(store.renew_public_token_claim(tenant, PROVIDER, first, lease(t0 + Duration::seconds(20))).await.unwrap());
    let busy = store.claim_public_token(tenant, PROVIDER, hash, t0 + Duration::seconds(31), t0 + Duration::minutes(2));
    assert_eq!(busy.await.unwrap(), Claim::Busy, "the renewed lease holds");

    // Its holder stopped renewing: the lease lapses and another exchange takes the claim over.
    let later = t0 + Duration::seconds(51);
    let second = TokenClaim { token_hash: hash, claim_id: won_claim(&*store, tenant, PROVIDER, hash, later).await };
    assert_ne!(first.claim_id, second.claim_id, "each claim has its own id");

    // The first holder comes back: it can change nothing.
    assert!(!store.renew_public_token_claim(tenant, PROVIDER, first, lease(later)).await.unwrap(), "renew");
    store.release_public_token(tenant, PROVIDER, first).await.unwrap();
    let stale = connection(tenant, "user-1", PROVIDER);
    let recorded = store.create_connection(&stale, b"handle", b"ref", first, later).await.unwrap();
    assert!(!recorded, "a lost claim records nothing");
    assert_eq!(store.get_connection(tenant, stale.id).await.unwrap(), None, "no connection written");
    let claim = store.claim_public_token(tenant, PROVIDER, hash, later, lease(later)).await.unwrap();
    assert_eq!(claim, Claim::Busy, "the second claim still holds after the first's release");

    // The claim's current holder records the exchange.
    let recorded = connection(tenant, "user-1", PROVIDER);
    assert!(store.create_connection(&recorded, b"handle", b"ref", second, later).await.unwrap(), "the claim holds");
    let claim = store.claim_public_token(tenant, PROVIDER, hash, later, lease(later)).await.unwrap();
    assert_eq!(claim, Claim::Exchanged { connection_id: recorded.id });
}
conformance!(a_claim_that_lapsed_and_was_taken_over_can_neither_renew_release_nor_record);
