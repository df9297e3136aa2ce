//! The REST classifier: the first configured operation whose method and path template match gives
//! the action; its resource template and context sources read path parameters, the query,
//! headers and JSON body pointers, and compute fields such as `order_value`. Path templates were
//! compiled when the configuration was loaded; matching splits the path once and never uses a
//! regex. The body is parsed only when the matched operation reads it.

use lexecon_config::classifier::RestClassifier;
use serde_json::Map;

use super::value::{self, Request};
use super::{Classified, ClassifiedItem, ClassifyError, RequestParts};

pub(super) fn classify(
    config: &RestClassifier,
    parts: &RequestParts<'_>,
    body: Option<&[u8]>,
) -> Result<Classified, ClassifyError> {
    let (path, query) = parts.path_and_query();
    let matched = config.operations.iter().find_map(|op| {
        if op.method != parts.method {
            return None;
        }
        let template = op.path.get()?;
        template
            .match_path(path)
            .map(|values| (op, template, values))
    });
    let Some((op, template, path_values)) = matched else {
        return Err(ClassifyError::NoOperation {
            method: parts.method.to_string(),
            path: path.to_string(),
        });
    };
    let parsed_body = if op.uses_body() {
        let what = format!("{} {}", op.method, op.path.source());
        Some(value::parse_body(body, &what)?)
    } else {
        None
    };
    let request = Request {
        template: Some(template),
        path_values: &path_values,
        query,
        headers: parts.headers,
        body: parsed_body.as_ref(),
    };
    let resource = match &op.resource {
        Some(resource) => {
            let template = resource.get().ok_or_else(|| {
                ClassifyError::Malformed(format!(
                    "the resource template {:?} is invalid in the configuration",
                    resource.source()
                ))
            })?;
            Some(request.render(template.parts(), resource.source())?)
        }
        None => None,
    };
    let mut context = Map::new();
    for (name, source) in &op.context {
        let expr = source.get().ok_or_else(|| {
            ClassifyError::Malformed(format!(
                "context.{name}: the source {:?} is invalid in the configuration",
                source.source()
            ))
        })?;
        let value = request.eval(expr).map_err(|e| match e {
            ClassifyError::Malformed(m) => ClassifyError::Malformed(format!("context.{name}: {m}")),
            other => other,
        })?;
        if let Some(value) = value {
            context.insert(name.clone(), value);
        }
    }
    Ok(Classified {
        items: vec![ClassifiedItem {
            action: op.action.clone(),
            resource,
            context,
            jsonrpc_id: None,
            rpc_method: None,
            tool: None,
        }],
        batch: false,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use lexecon_config::classifier::ClassifierConfig;
    use serde_json::json;

    fn trading() -> RestClassifier {
        let yaml = r#"
kind: rest
operations:
  - method: POST
    path: /v1/orders
    action: axn_place_order
    resource: "res_security:{body./symbol}"
    context:
      symbol: body./symbol
      quantity: body./quantity
      limit_price: body./limit_price
      order_value: "mul(body./quantity, body./limit_price)"
      account: header.x-account
      venue: query.venue
  - method: GET
    path: "/v1/orders/{id}"
    action: axn_view_order
    resource: "res_order:{id}"
  - method: DELETE
    path: "/v1/accounts/{account}/orders/{id}"
    action: axn_cancel_order
    resource: "res_order:{account}/{id}"
    context: {reason: query.reason, fee: "sub(query.amount, 0.5)"}
"#;
        match serde_norway::from_str::<ClassifierConfig>(yaml).unwrap() {
            ClassifierConfig::Rest(rest) => rest,
            other => panic!("not rest: {other:?}"),
        }
    }

    fn run(
        method: &str,
        path: &str,
        query: Option<&str>,
        headers: &http::HeaderMap,
        body: Option<&str>,
    ) -> Result<Classified, ClassifyError> {
        let parts = RequestParts {
            method,
            path,
            query,
            headers,
        };
        classify(&trading(), &parts, body.map(str::as_bytes))
    }

    #[test]
    fn order_body_pointers_and_computed_order_value_fill_the_context() {
        let mut headers = http::HeaderMap::new();
        headers.insert("x-account", http::HeaderValue::from_static("acc-7"));
        let out = run(
            "POST",
            "/v1/orders",
            Some("venue=XNYS"),
            &headers,
            Some(r#"{"symbol":"AAPL","quantity":100000,"limit_price":201.5}"#),
        )
        .unwrap();
        let item = &out.items[0];
        assert_eq!(item.action, "axn_place_order");
        assert_eq!(item.resource.as_deref(), Some("res_security:AAPL"));
        assert_eq!(item.context["order_value"], json!(20_150_000));
        assert_eq!(item.context["quantity"], json!(100000));
        assert_eq!(item.context["limit_price"], json!(201.5));
        assert_eq!(item.context["account"], json!("acc-7"));
        assert_eq!(item.context["venue"], json!("XNYS"));
    }

    #[test]
    fn fractional_order_value_stays_a_float_and_numeric_strings_count() {
        let out = run(
            "POST",
            "/v1/orders",
            None,
            &http::HeaderMap::new(),
            Some(r#"{"symbol":"AAPL","quantity":"3","limit_price":0.5}"#),
        )
        .unwrap();
        assert_eq!(out.items[0].context["order_value"], json!(1.5));
        assert!(!out.items[0].context.contains_key("venue"));
    }

    #[test]
    fn path_params_fill_the_resource_and_are_percent_decoded() {
        let out = run(
            "GET",
            "/v1/orders/ord%2042",
            None,
            &http::HeaderMap::new(),
            None,
        )
        .unwrap();
        assert_eq!(out.items[0].action, "axn_view_order");
        assert_eq!(out.items[0].resource.as_deref(), Some("res_order:ord 42"));
    }

    #[test]
    fn query_values_are_decoded_and_computed() {
        let out = run(
            "DELETE",
            "/v1/accounts/a1/orders/9",
            Some("reason=fat+finger%21&amount=2"),
            &http::HeaderMap::new(),
            None,
        )
        .unwrap();
        let item = &out.items[0];
        assert_eq!(item.resource.as_deref(), Some("res_order:a1/9"));
        assert_eq!(item.context["reason"], json!("fat finger!"));
        assert_eq!(item.context["fee"], json!(1.5));
    }

    #[test]
    fn query_inside_the_path_is_read_too() {
        let out = run(
            "DELETE",
            "/v1/accounts/a1/orders/9?amount=3",
            None,
            &http::HeaderMap::new(),
            None,
        )
        .unwrap();
        assert_eq!(out.items[0].context["fee"], json!(2.5));
    }

    #[test]
    fn unmatched_method_or_path_is_no_operation() {
        let h = http::HeaderMap::new();
        assert_eq!(
            run("PUT", "/v1/orders/1", None, &h, None).unwrap_err(),
            ClassifyError::NoOperation {
                method: "PUT".into(),
                path: "/v1/orders/1".into()
            }
        );
        assert!(matches!(
            run("GET", "/v1/orders", None, &h, None),
            Err(ClassifyError::NoOperation { .. })
        ));
    }

    #[test]
    fn malformed_or_missing_body_is_rejected_with_a_reason() {
        let h = http::HeaderMap::new();
        for (body, expected) in [
            (None, "needs a JSON body"),
            (Some("{\"symbol\":"), "body is not valid JSON"),
            (
                Some(r#"{"quantity":1,"limit_price":2}"#),
                "resource res_security:{body./symbol}: body./symbol is missing",
            ),
            (
                Some(r#"{"symbol":"A","limit_price":2}"#),
                "context.order_value: body./quantity is missing",
            ),
            (
                Some(r#"{"symbol":"A","quantity":"lots","limit_price":2}"#),
                "body./quantity must be a number",
            ),
        ] {
            match run("POST", "/v1/orders", None, &h, body) {
                Err(ClassifyError::Malformed(m)) => assert!(m.contains(expected), "{body:?}: {m}"),
                other => panic!("{body:?}: expected Malformed, got {other:?}"),
            }
        }
    }

    #[test]
    fn a_query_parameter_a_source_reads_must_appear_once() {
        let h = http::HeaderMap::new();
        for query in [
            "amount=1&reason=a&reason=b",
            "reason=a&amount=1&reason=a",
            "amount=1&reason=a&reas%6Fn=b",
            "amount=1&amount=2",
        ] {
            let err = run("DELETE", "/v1/accounts/a1/orders/9", Some(query), &h, None).unwrap_err();
            assert!(
                matches!(&err, ClassifyError::RepeatedParameter { .. }),
                "{query}: {err:?}"
            );
            assert!(err.to_string().contains("more than once"), "{err}");
        }
        let out = run(
            "DELETE",
            "/v1/accounts/a1/orders/9",
            Some("reason=a&amount=2&other=1&other=2"),
            &h,
            None,
        )
        .unwrap();
        assert_eq!(
            out.items[0].context["reason"],
            json!("a"),
            "parameters no source reads may repeat"
        );
    }

    #[test]
    fn a_body_with_a_key_twice_is_refused_naming_the_key() {
        let h = http::HeaderMap::new();
        let err = run(
            "POST",
            "/v1/orders",
            None,
            &h,
            Some(r#"{"symbol":"AAPL","quantity":1,"limit_price":2,"quantity":1000000}"#),
        )
        .unwrap_err();
        assert!(
            matches!(&err, ClassifyError::DuplicateKey { key, .. } if key == "quantity"),
            "{err:?}"
        );
        assert!(err.to_string().contains("\"quantity\" twice"), "{err}");
        let nested = run(
            "POST",
            "/v1/orders",
            None,
            &h,
            Some(r#"{"symbol":"AAPL","quantity":1,"limit_price":2,"meta":{"a":1,"a":2}}"#),
        );
        assert!(
            matches!(nested, Err(ClassifyError::DuplicateKey { .. })),
            "a key nobody reads still makes the body ambiguous"
        );
    }

    #[test]
    fn computed_division_by_zero_is_malformed() {
        let config: ClassifierConfig = serde_norway::from_str(
            "kind: rest\noperations: [{method: POST, path: /x, action: axn_x, context: {r: \"div(body./a, body./b)\"}}]",
        )
        .unwrap();
        let h = http::HeaderMap::new();
        let parts = RequestParts {
            method: "POST",
            path: "/x",
            query: None,
            headers: &h,
        };
        let err = crate::classify(&config, &parts, Some(br#"{"a":1,"b":0}"#)).unwrap_err();
        assert!(matches!(err, ClassifyError::Malformed(m) if m.contains("division by zero")));
    }
}
