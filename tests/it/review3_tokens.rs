//! Listings, their paging tokens and the auditors' queries: what a token, forged or replayed
//! by another caller, account, region or query, can make a listing show.

use serde_json::{json, Value};

use crate::common::{RawResponse, Signing, TestServer};

const LOOKUP: &str = "com.amazonaws.cloudtrail.v20131101.CloudTrail_20131101.LookupEvents";

fn in_region(region: &str) -> Signing {
    Signing {
        region: region.into(),
        ..Signing::default()
    }
}

fn trail_in(region: &str) -> Signing {
    Signing {
        region: region.into(),
        service: "cloudtrail".into(),
        ..Signing::default()
    }
}

fn lookup(s: &TestServer, body: &Value, sign: Signing) -> RawResponse {
    s.call_signed(LOOKUP, &body.to_string(), sign)
}

/// The resource names of a LookupEvents answer's events.
fn resources(r: &RawResponse) -> Vec<String> {
    let v = r.json();
    v["Events"]
        .as_array()
        .unwrap_or_else(|| panic!("{}", r.body))
        .iter()
        .flat_map(|e| e["Resources"].as_array().cloned().unwrap_or_default())
        .filter_map(|r| r["ResourceName"].as_str().map(str::to_owned))
        .collect()
}

/// LookupEvents answers the events of the region it is called in, as CloudTrail's does: a
/// caller in us-east-1 sees none of eu-west-1's (by default, by event name, by the other
/// region's resource name, or through a token), and the eu-west-1 caller sees them.
#[test]
fn lookup_events_answers_only_the_events_of_the_region_called() {
    let s = TestServer::start_with(None, &["us-east-1", "eu-west-1"]);
    let mut arns = std::collections::HashMap::new();
    for region in ["us-east-1", "eu-west-1"] {
        let r = s.call_signed(
            "secretsmanager.CreateSecret",
            &json!({"Name": format!("only-in-{region}"), "SecretString": "v",
                    "ClientRequestToken": format!("00000000-0000-4000-8000-{:012}", region.len())})
            .to_string(),
            in_region(region),
        );
        assert_eq!(r.status, 200, "{}", r.body);
        arns.insert(region, r.json()["ARN"].as_str().unwrap().to_owned());
    }
    for (region, other) in [("us-east-1", "eu-west-1"), ("eu-west-1", "us-east-1")] {
        let own = &arns[region];
        let foreign = &arns[other];
        for body in [
            json!({}),
            json!({"LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "CreateSecret"}]}),
            json!({"LookupAttributes": [{"AttributeKey": "ResourceType", "AttributeValue": "AWS::SecretsManager::Secret"}]}),
        ] {
            let r = lookup(&s, &body, trail_in(region));
            assert_eq!(r.status, 200, "{region} {body}: {}", r.body);
            let names = resources(&r);
            assert!(names.contains(own), "{region} {body}: {}", r.body);
            assert!(!names.contains(foreign), "{region} {body}: {}", r.body);
            assert!(
                !r.body.contains(&format!("only-in-{other}")),
                "{region} {body}: {}",
                r.body
            );
        }
        for name in [foreign.clone(), format!("only-in-{other}")] {
            let body = json!({"LookupAttributes": [{"AttributeKey": "ResourceName", "AttributeValue": name}]});
            let r = lookup(&s, &body, trail_in(region));
            assert_eq!(r.status, 200, "{region} {body}: {}", r.body);
            assert_eq!(r.json()["Events"], json!([]), "{region} {body}: {}", r.body);
        }
        // A page of one with a token: the token pages the same region only.
        let mut seen: Vec<String> = Vec::new();
        let mut token: Option<String> = None;
        for _ in 0..100 {
            let mut body = json!({"MaxResults": 1});
            if let Some(t) = &token {
                body["NextToken"] = json!(t);
            }
            let r = lookup(&s, &body, trail_in(region));
            assert_eq!(r.status, 200, "{region}: {}", r.body);
            seen.extend(resources(&r));
            token = r.json()["NextToken"].as_str().map(str::to_owned);
            if token.is_none() {
                break;
            }
        }
        assert!(token.is_none(), "{region}: paging did not end");
        assert!(
            seen.contains(own) && !seen.contains(foreign),
            "{region}: {seen:?}"
        );
    }
    // A token issued in one region is not accepted in another.
    let r = lookup(&s, &json!({"MaxResults": 1}), trail_in("us-east-1"));
    let t = r.json()["NextToken"].as_str().unwrap().to_owned();
    let r = lookup(
        &s,
        &json!({"MaxResults": 1, "NextToken": t}),
        trail_in("eu-west-1"),
    );
    assert_eq!(r.error_type(), "InvalidNextTokenException", "{}", r.body);
}
