//! Listings, their paging tokens and the auditors' queries: what a token, forged or replayed
//! by another caller, account, region or query, can make a listing show.

use serde_json::{json, Value};

use base64::Engine as _;

use crate::common::{
    call_as, example_policies, key_for, ok, user_allowing, RawResponse, Signing, TestServer,
    ACCOUNT, AKID, SECRET,
};

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

/// Every page of a LookupEvents query (`MaxResults` per page), following its tokens.
fn all_events(s: &TestServer, body: &Value, per_page: i64) -> Vec<Value> {
    let mut out = Vec::new();
    let mut token: Option<String> = None;
    for _ in 0..1000 {
        let mut b = body.clone();
        b["MaxResults"] = json!(per_page);
        if let Some(t) = &token {
            b["NextToken"] = json!(t);
        }
        let r = lookup(s, &b, trail_in("us-east-1"));
        assert_eq!(r.status, 200, "{b}: {}", r.body);
        let v = r.json();
        out.extend(v["Events"].as_array().unwrap().iter().cloned());
        token = v["NextToken"].as_str().map(str::to_owned);
        if token.is_none() {
            return out;
        }
    }
    panic!("{body}: paging did not end");
}

/// Each lookup attribute answers, across its pages, exactly the events of the whole trail
/// (up to the same end time) that carry that attribute's value, each once and newest
/// first; a token is refused with another attribute, value or time range than its own.
#[test]
fn lookup_attributes_select_exactly_their_events_across_pages() {
    let (_t, dir) = example_policies();
    user_allowing(&dir, ACCOUNT, "worker", &["secretsmanager:*"]);
    let s = TestServer::start_configured(None, &["us-east-1"], None, Some(dir.clone()));
    let (wk, ws) = key_for(&s, &dir, ACCOUNT, "worker");
    let mut arns = Vec::new();
    for i in 0..4 {
        let v = ok(
            &s,
            "secretsmanager.CreateSecret",
            &json!({"Name": format!("app/s{i}"), "SecretString": "v"}),
        );
        arns.push(v["ARN"].as_str().unwrap().to_owned());
    }
    for i in 0..9 {
        let id = format!("app/s{}", i % 4);
        let target = ["GetSecretValue", "DescribeSecret", "TagResource"][i % 3];
        let body = if target == "TagResource" {
            json!({"SecretId": id, "Tags": [{"Key": "k", "Value": format!("{i}")}]})
        } else {
            json!({ "SecretId": id })
        };
        let r = call_as(&s, &wk, &ws, &format!("secretsmanager.{target}"), &body);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    std::thread::sleep(std::time::Duration::from_millis(20));
    let end = strongroom::ops::system_now_ms() as f64 / 1000.0;
    std::thread::sleep(std::time::Duration::from_millis(50));
    let window = json!({"EndTime": end});
    let everything = all_events(&s, &window, 50);
    assert!(everything.len() >= 13, "{everything:?}");
    let ids = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| e["EventId"].as_str().unwrap().to_owned())
            .collect()
    };
    // Paging one by one answers the same events in the same order.
    assert_eq!(ids(&all_events(&s, &window, 1)), ids(&everything));
    let field = |e: &Value, key: &str| -> Vec<String> {
        match key {
            "ResourceName" => e["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .flat_map(|r| {
                    let arn = r["ResourceName"].as_str().unwrap().to_owned();
                    let short = arn
                        .split(":secret:")
                        .nth(1)
                        .map(|n| n.rsplit_once('-').map_or(n, |(a, _)| a).to_owned());
                    std::iter::once(arn).chain(short)
                })
                .collect(),
            "ResourceType" => e["Resources"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r["ResourceType"].as_str().unwrap().to_owned())
                .collect(),
            _ => e[key].as_str().map(str::to_owned).into_iter().collect(),
        }
    };
    let first_id = everything[3]["EventId"].as_str().unwrap().to_owned();
    let table: Vec<(&str, String)> = vec![
        ("EventName", "GetSecretValue".into()),
        ("EventName", "TagResource".into()),
        ("EventName", "CreateSecret".into()),
        ("Username", "worker".into()),
        ("Username", "root".into()),
        ("AccessKeyId", wk.clone()),
        ("ReadOnly", "true".into()),
        ("ReadOnly", "false".into()),
        ("EventSource", "secretsmanager.amazonaws.com".into()),
        ("ResourceType", "AWS::SecretsManager::Secret".into()),
        ("ResourceName", arns[1].clone()),
        ("ResourceName", "app/s2".into()),
        ("ResourceName", "app/s".into()),
        ("EventId", first_id),
    ];
    for (key, value) in &table {
        let want: Vec<Value> = everything
            .iter()
            .filter(|e| field(e, key).contains(value))
            .cloned()
            .collect();
        let mut body = window.clone();
        body["LookupAttributes"] = json!([{"AttributeKey": key, "AttributeValue": value}]);
        for per_page in [1, 2, 50] {
            let got = all_events(&s, &body, per_page);
            assert_eq!(ids(&got), ids(&want), "{key}={value} by {per_page}");
        }
        if *key == "ResourceName" && value == "app/s" {
            assert!(want.is_empty());
        }
    }
    // A token answers only the query it came from.
    let mut body = window.clone();
    body["LookupAttributes"] =
        json!([{"AttributeKey": "EventName", "AttributeValue": "GetSecretValue"}]);
    body["MaxResults"] = json!(1);
    let r = lookup(&s, &body, trail_in("us-east-1"));
    let token = r.json()["NextToken"].as_str().unwrap().to_owned();
    for other in [
        json!({"EndTime": end, "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "DescribeSecret"}]}),
        json!({"EndTime": end, "LookupAttributes": [{"AttributeKey": "Username", "AttributeValue": "GetSecretValue"}]}),
        json!({"EndTime": end}),
        json!({"EndTime": end + 1.0, "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "GetSecretValue"}]}),
        json!({"StartTime": 0, "EndTime": end, "LookupAttributes": [{"AttributeKey": "EventName", "AttributeValue": "GetSecretValue"}]}),
    ] {
        let mut b = other.clone();
        b["NextToken"] = json!(token);
        let r = lookup(&s, &b, trail_in("us-east-1"));
        assert_eq!(
            r.error_type(),
            "InvalidNextTokenException",
            "{other}: {}",
            r.body
        );
    }
    // Edited, truncated or foreign tokens are client errors.
    let mut flipped = token.clone().into_bytes();
    flipped[5] ^= 1;
    for bad in [
        String::from_utf8(flipped).unwrap(),
        token[..token.len() - 3].to_owned(),
        "AAAA".into(),
        "%%%".into(),
    ] {
        let mut b = body.clone();
        b["NextToken"] = json!(bad);
        let r = lookup(&s, &b, trail_in("us-east-1"));
        assert_eq!(
            r.error_type(),
            "InvalidNextTokenException",
            "{bad}: {}",
            r.body
        );
    }
}

/// BatchGetSecretValue with `Filters` pages the readable secrets the filter selects, each
/// once, whatever the page size; the secrets the caller may not read are neither answered
/// nor named, also through a token another caller was given or one forged to start
/// anywhere. The owner (positive control) reads them all.
#[test]
fn filtered_batch_reads_page_exactly_the_readable_secrets() {
    let (_t, dir) = example_policies();
    crate::common::write(
        &dir,
        &format!("accounts/{ACCOUNT}/users/team-a.json"),
        &format!(
            r#"{{"UserName":"team-a","InlinePolicies":{{"p":{{"Version":"2012-10-17","Statement":[
                {{"Effect":"Allow","Action":["secretsmanager:ListSecrets","secretsmanager:BatchGetSecretValue"],"Resource":"*"}},
                {{"Effect":"Allow","Action":"secretsmanager:GetSecretValue","Resource":"arn:aws:secretsmanager:us-east-1:{ACCOUNT}:secret:team-a/*"}}]}}}}}}"#
        ),
    );
    let s = TestServer::start_configured(None, &["us-east-1"], None, Some(dir.clone()));
    let (ak, as_) = key_for(&s, &dir, ACCOUNT, "team-a");
    let mut created = Vec::new();
    for i in 0..5 {
        for team in ["team-a", "team-b"] {
            let v = ok(
                &s,
                "secretsmanager.CreateSecret",
                &json!({"Name": format!("{team}/s{i}"), "SecretString": format!("{team}-{i}")}),
            );
            created.push(v);
        }
    }
    ok(
        &s,
        "secretsmanager.CreateSecret",
        &json!({"Name": "unrelated", "SecretString": "x"}),
    );
    let filters = json!([{"Key": "name", "Values": ["team-"]}]);
    let pages = |akid: &str, secret: &str, max: i64, start: Option<String>| -> Vec<String> {
        let mut names = Vec::new();
        let mut token = start;
        for _ in 0..100 {
            let mut body = json!({"Filters": filters, "MaxResults": max});
            if let Some(t) = &token {
                body["NextToken"] = json!(t);
            }
            let r = call_as(
                &s,
                akid,
                secret,
                "secretsmanager.BatchGetSecretValue",
                &body,
            );
            assert_eq!(r.status, 200, "{}", r.body);
            let v = r.json();
            assert_eq!(v["Errors"], json!([]), "{v}");
            for e in v["SecretValues"].as_array().unwrap() {
                let name = e["Name"].as_str().unwrap().to_owned();
                assert_eq!(
                    e["SecretString"].as_str().unwrap(),
                    name.replace("/s", "-"),
                    "{v}"
                );
                names.push(name);
            }
            token = v["NextToken"].as_str().map(str::to_owned);
            if token.is_none() {
                return names;
            }
        }
        panic!("paging did not end");
    };
    let team_a: Vec<String> = (0..5).map(|i| format!("team-a/s{i}")).collect();
    let mut both: Vec<String> = (0..5)
        .flat_map(|i| [format!("team-a/s{i}"), format!("team-b/s{i}")])
        .collect();
    both.sort();
    for max in [1, 2, 3, 20] {
        assert_eq!(pages(&ak, &as_, max, None), team_a, "MaxResults {max}");
        let mut owner = pages(AKID, SECRET, max, None);
        owner.sort();
        assert_eq!(owner, both, "MaxResults {max}");
    }
    // The owner's token, replayed by the team-a caller.
    let r = ok(
        &s,
        "secretsmanager.BatchGetSecretValue",
        &json!({"Filters": filters, "MaxResults": 1}),
    );
    let owners = r["NextToken"].as_str().unwrap().to_owned();
    let got = pages(&ak, &as_, 2, Some(owners));
    assert!(got.iter().all(|n| n.starts_with("team-a/")), "{got:?}");
    // Tokens forged to start before everything, or at each secret.
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let forged = |value: &str, id: &str| {
        b64.encode(
            format!(
                "1.{}.n.{value}.{}",
                b64.encode("BatchGetSecretValue"),
                b64.encode(id)
            )
            .as_bytes(),
        )
    };
    let got = pages(&ak, &as_, 3, Some(forged(&i64::MIN.to_string(), "")));
    assert_eq!(got, team_a);
    let got = pages(&ak, &as_, 3, Some(forged("-1", "\u{7f}")));
    assert_eq!(got, team_a);
    let _ = created;
}

/// A ListSecrets listing paged by name, created date or last changed date, in either order,
/// shows every secret that exists throughout exactly once while secrets are created,
/// deleted and scheduled for deletion between its pages; a secret scheduled for deletion
/// is listed only with `IncludePlannedDeletion`.
#[test]
fn list_secrets_pages_stay_complete_while_secrets_come_and_go() {
    let s = TestServer::start();
    let mut n = 0;
    let mut create = |s: &TestServer, name: &str| {
        n += 1;
        ok(
            s,
            "secretsmanager.CreateSecret",
            &json!({"Name": name, "SecretString": "v",
                    "ClientRequestToken": format!("00000000-0000-4000-8000-{n:012}")}),
        );
    };
    for i in 0..8 {
        create(&s, &format!("stable-{i}"));
    }
    let mut round = 0;
    for (by, order) in [
        ("name", "asc"),
        ("name", "desc"),
        ("created-date", "asc"),
        ("created-date", "desc"),
        ("last-changed-date", "asc"),
    ] {
        for include in [false, true] {
            round += 1;
            // Churn: one to delete outright, one to schedule for deletion, both listed in
            // neither position for sure; a new one created between pages.
            create(&s, &format!("gone-{round}"));
            create(&s, &format!("planned-{round}"));
            let mut seen: Vec<String> = Vec::new();
            let mut token: Option<String> = None;
            for page in 0..50 {
                let mut body = json!({"SortBy": by, "SortOrder": order, "MaxResults": 2,
                                       "IncludePlannedDeletion": include});
                if let Some(t) = &token {
                    body["NextToken"] = json!(t);
                }
                let v = ok(&s, "secretsmanager.ListSecrets", &body);
                for e in v["SecretList"].as_array().unwrap() {
                    let deleted = e.get("DeletedDate").is_some_and(|d| !d.is_null());
                    assert!(include || !deleted, "{v}");
                    seen.push(e["Name"].as_str().unwrap().to_owned());
                }
                if page == 1 {
                    ok(
                        &s,
                        "secretsmanager.DeleteSecret",
                        &json!({"SecretId": format!("gone-{round}"), "ForceDeleteWithoutRecovery": true}),
                    );
                    ok(
                        &s,
                        "secretsmanager.DeleteSecret",
                        &json!({"SecretId": format!("planned-{round}"), "RecoveryWindowInDays": 7}),
                    );
                    create(&s, &format!("new-{round}"));
                }
                token = v["NextToken"].as_str().map(str::to_owned);
                if token.is_none() {
                    break;
                }
            }
            assert!(token.is_none(), "{by} {order}: paging did not end");
            for i in 0..8 {
                let name = format!("stable-{i}");
                let times = seen.iter().filter(|n| **n == name).count();
                assert_eq!(times, 1, "{by} {order} {include}: {name} in {seen:?}");
            }
            let mut unique = seen.clone();
            unique.sort();
            unique.dedup();
            assert_eq!(unique.len(), seen.len(), "{by} {order} {include}: {seen:?}");
            // Afterwards the planned deletion is listed only when asked for.
            for (inc, listed) in [(false, false), (true, true)] {
                let v = ok(
                    &s,
                    "secretsmanager.ListSecrets",
                    &json!({"IncludePlannedDeletion": inc,
                            "Filters": [{"Key": "name", "Values": [format!("planned-{round}")]}]}),
                );
                assert_eq!(
                    v["SecretList"].as_array().unwrap().len(),
                    usize::from(listed),
                    "{v}"
                );
            }
        }
    }
}

/// Tokens and markers edited bit by bit, cut short, overlong in their numbers, holding NUL
/// or odd characters, or issued by another listing are each listing's own client error
/// (`InvalidNextTokenException`, KMS's `InvalidMarkerException`), never a 5xx or a page.
#[test]
fn edited_or_foreign_tokens_are_each_services_invalid_token_error() {
    let s = TestServer::start();
    for i in 0..3 {
        ok(
            &s,
            "secretsmanager.CreateSecret",
            &json!({"Name": format!("t-{i}"), "SecretString": "v"}),
        );
        ok(
            &s,
            "secretsmanager.PutSecretValue",
            &json!({"SecretId": format!("t-{i}"), "SecretString": "w"}),
        );
    }
    let key = s.call("TrentService.CreateKey", "{}");
    let key_id = key.json()["KeyMetadata"]["KeyId"]
        .as_str()
        .unwrap()
        .to_owned();
    s.call("TrentService.CreateKey", "{}");
    for i in 0..3 {
        let r = s.call(
            "TrentService.CreateAlias",
            &json!({"AliasName": format!("alias/t-{i}"), "TargetKeyId": key_id}).to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    for _ in 0..2 {
        let r = s.call(
            "TrentService.RotateKeyOnDemand",
            &json!({ "KeyId": key_id }).to_string(),
        );
        assert_eq!(r.status, 200, "{}", r.body);
    }
    // (target, body without its token, token field, next-token field, error)
    let sm = "InvalidNextTokenException";
    let kms = "InvalidMarkerException";
    let ops: Vec<(String, Value, &str, &str, &str)> = vec![
        (
            "secretsmanager.ListSecrets".into(),
            json!({"MaxResults": 1}),
            "NextToken",
            "NextToken",
            sm,
        ),
        (
            "secretsmanager.ListSecrets".into(),
            json!({"MaxResults": 1, "SortBy": "name"}),
            "NextToken",
            "NextToken",
            sm,
        ),
        (
            "secretsmanager.ListSecrets".into(),
            json!({"MaxResults": 1, "SortBy": "last-accessed-date", "SortOrder": "desc"}),
            "NextToken",
            "NextToken",
            sm,
        ),
        (
            "secretsmanager.ListSecretVersionIds".into(),
            json!({"SecretId": "t-0", "MaxResults": 1, "IncludeDeprecated": true}),
            "NextToken",
            "NextToken",
            sm,
        ),
        (
            "secretsmanager.BatchGetSecretValue".into(),
            json!({"Filters": [{"Key": "name", "Values": ["t-"]}], "MaxResults": 1}),
            "NextToken",
            "NextToken",
            sm,
        ),
        (
            "TrentService.ListKeys".into(),
            json!({"Limit": 1}),
            "Marker",
            "NextMarker",
            kms,
        ),
        (
            "TrentService.ListAliases".into(),
            json!({"Limit": 1}),
            "Marker",
            "NextMarker",
            kms,
        ),
        (
            "TrentService.ListKeyRotations".into(),
            json!({"KeyId": key_id, "Limit": 1}),
            "Marker",
            "NextMarker",
            kms,
        ),
    ];
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let mut issued: Vec<String> = Vec::new();
    for (target, body, _, next, _) in &ops {
        let r = s.call(target, &body.to_string());
        assert_eq!(r.status, 200, "{target}: {}", r.body);
        let t = r.json()[*next]
            .as_str()
            .unwrap_or_else(|| panic!("{target}: {}", r.body))
            .to_owned();
        // The token pages on (positive control).
        let mut b = body.clone();
        b[ops.iter().find(|o| &o.0 == target).unwrap().2] = json!(t);
        let r = s.call(target, &b.to_string());
        assert_eq!(r.status, 200, "{target} {b}: {}", r.body);
        issued.push(t);
    }
    for (i, (target, body, field, _, error)) in ops.iter().enumerate() {
        let own = &issued[i];
        let raw = String::from_utf8(b64.decode(own).unwrap()).unwrap();
        let mut bad: Vec<String> = vec![
            own[..own.len() - 1].to_owned(),
            format!("{own}A"),
            format!("{own}="),
            own.replace(|c: char| c.is_ascii_digit(), "9"),
            b64.encode(raw.replace('.', ":")),
            b64.encode(format!("{raw}\0")),
            b64.encode(raw.replace(|c: char| c.is_ascii_digit(), "99999999999999999999")),
            b64.encode(b"\xff\xfe"),
            "=".into(),
            ".".into(),
            "%00".into(),
        ];
        // Another Secrets Manager listing's token (or another ordering's) is refused.
        for (j, other) in issued.iter().enumerate() {
            if j != i && *error == sm && ops[j].4 == sm {
                let mut b = body.clone();
                b[*field] = json!(other);
                let r = s.call(target, &b.to_string());
                assert_eq!(r.error_type(), sm, "{target} {}: {}", ops[j].0, r.body);
            }
            if ops[j].0 != *target {
                bad.push(other.clone());
            }
        }
        for k in 0..own.len() {
            let mut bytes = own.clone().into_bytes();
            bytes[k] ^= 0x01;
            if let Ok(t) = String::from_utf8(bytes) {
                bad.push(t);
            }
        }
        for t in bad {
            let mut b = body.clone();
            b[*field] = json!(t);
            let r = s.call(target, &b.to_string());
            assert!(r.status < 500, "{target} {t:?}: {}", r.body);
            if r.status == 200 {
                // A flipped bit may still decode to a position: it pages the same listing.
                continue;
            }
            let e = r.error_type();
            assert!(
                e == *error || e == "ValidationException",
                "{target} {t:?}: {}",
                r.body
            );
        }
    }
}
