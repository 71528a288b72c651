//! MoneyKit's account numbers (M16 `GET /links/{id}/accounts/numbers`) and owners (M17
//! `GET /links/{id}/identity`) as linkgate's account details. Values are taken as MoneyKit gives
//! them (digits stay text, leading zeros kept); nothing here is logged. Accounts MoneyKit gives no
//! numbers or no owners for are left out.

use super::wire;
use crate::domain::{
    AccountNumbers, AccountOwners, AchNumber, BacsNumber, EftNumber, InternationalNumber, Owner, OwnerAddress,
    OwnerEmail, OwnerPhoneNumber, OwnersOf, PhoneNumberType, stable_id,
};
use uuid::Uuid;

/// The numbers of each account of M16's answer.
pub(super) fn account_numbers(connection_id: Uuid, answer: wire::AccountNumbers) -> Vec<AccountNumbers> {
    answer
        .accounts
        .into_iter()
        .map(|account| {
            let numbers = account.numbers;
            AccountNumbers {
                account_id: stable_id(connection_id, "account", &account.account_id),
                ach: numbers
                    .ach
                    .into_iter()
                    .map(|ach| AchNumber {
                        account_number: ach.account_number,
                        routing_number: ach.routing_number,
                        wire_routing_number: ach.wire_routing_number.filter(|number| !number.is_empty()),
                    })
                    .collect(),
                eft: numbers
                    .eft
                    .into_iter()
                    .map(|eft| EftNumber {
                        account_number: eft.account_number,
                        institution_number: eft.institution_number,
                        branch_number: eft.branch_number,
                    })
                    .collect(),
                bacs: numbers
                    .bacs
                    .into_iter()
                    .map(|bacs| BacsNumber { account_number: bacs.account_number, sort_code: bacs.sort_code })
                    .collect(),
                international: numbers
                    .international
                    .into_iter()
                    .map(|international| InternationalNumber {
                        iban: international.iban,
                        bic: international.bic.filter(|bic| !bic.is_empty()),
                    })
                    .collect(),
            }
        })
        .filter(|numbers| !numbers.is_empty())
        .collect()
}

/// The owners of each account of M17's answer.
pub(super) fn account_owners(connection_id: Uuid, answer: wire::Identity) -> Vec<AccountOwners> {
    answer
        .accounts
        .into_iter()
        .filter(|account| !account.owners.is_empty())
        .map(|account| AccountOwners {
            of: OwnersOf::Account(stable_id(connection_id, "account", &account.account_id)),
            owners: account.owners.into_iter().map(owner).collect(),
        })
        .collect()
}

fn owner(owner: wire::Owner) -> Owner {
    Owner {
        names: owner.names,
        emails: owner
            .emails
            .into_iter()
            .map(|email| OwnerEmail { address: email.address, primary: email.primary.unwrap_or(false) })
            .collect(),
        phone_numbers: owner
            .phone_numbers
            .into_iter()
            .map(|phone| OwnerPhoneNumber {
                number: phone.number,
                kind: phone.kind.as_deref().map(phone_type),
                primary: phone.primary.unwrap_or(false),
            })
            .collect(),
        addresses: owner
            .addresses
            .into_iter()
            .map(|address| OwnerAddress {
                street: address.street,
                city: address.city,
                region: address.region,
                postal_code: address.postal_code,
                country: address.country.map(|country| country.to_ascii_uppercase()),
                primary: address.primary.unwrap_or(false),
            })
            .collect(),
    }
}

/// MoneyKit's phone `type`: `home`, `work`, `mobile`, `other`; anything newer is `other`.
fn phone_type(kind: &str) -> PhoneNumberType {
    match kind {
        "home" => PhoneNumberType::Home,
        "work" => PhoneNumberType::Work,
        "mobile" => PhoneNumberType::Mobile,
        _ => PhoneNumberType::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_keep_their_digits_and_accounts_without_any_are_left_out() {
        let connection_id = Uuid::now_v7();
        let answer: wire::AccountNumbers = serde_json::from_str(
            r#"{"accounts": [
                {"account_id": "acc_1", "account_type": "depository.checking", "name": "Checking",
                 "numbers": {"ach": [{"account_number": "0001234", "routing_number": "011000015",
                                      "wire_routing_number": null}],
                             "eft": [], "bacs": [], "international": []}},
                {"account_id": "acc_2", "account_type": "liability.credit_card", "name": "Card",
                 "numbers": {"ach": [], "eft": [], "bacs": [], "international": []}}],
               "link": {"link_id": "mk_1", "state": "connected"}}"#,
        )
        .unwrap();
        let numbers = account_numbers(connection_id, answer);
        assert_eq!(numbers.len(), 1, "the card has none");
        assert_eq!(numbers[0].account_id, stable_id(connection_id, "account", "acc_1"));
        assert_eq!(numbers[0].ach[0].account_number, "0001234", "leading zeros kept");
        assert_eq!(numbers[0].ach[0].wire_routing_number, None);
    }

    #[test]
    fn owners_take_every_part_moneykit_gives() {
        let answer: wire::Identity = serde_json::from_str(
            r#"{"accounts": [{"account_id": "acc_1", "account_type": "depository.checking", "name": "Checking",
                "owners": [{"names": ["Jo Doe"], "emails": [{"address": "jo@example.com", "primary": true}],
                            "phone_numbers": [{"number": "+15555550100", "type": "satellite"}],
                            "addresses": [{"city": "Austin", "country": "us", "primary": true}]}]},
                {"account_id": "acc_2", "account_type": "depository.savings", "name": "Savings", "owners": []}],
               "link": {"link_id": "mk_1", "state": "connected"}}"#,
        )
        .unwrap();
        let owners = account_owners(Uuid::now_v7(), answer);
        assert_eq!(owners.len(), 1);
        let owner = &owners[0].owners[0];
        assert_eq!(owner.names, ["Jo Doe"]);
        assert!(owner.emails[0].primary);
        assert_eq!(owner.phone_numbers[0].kind, Some(PhoneNumberType::Other), "an unknown type is other");
        assert!(!owner.phone_numbers[0].primary, "not primary unless MoneyKit says so");
        assert_eq!(owner.addresses[0].country.as_deref(), Some("US"));
    }
}
